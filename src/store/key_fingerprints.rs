//! The fingerprints of the keys a database is used with (see
//! [`crate::keys::KeyFingerprint`]).

use diesel::prelude::*;

use super::{DbConnection, StoreError};

diesel::table! {
    key_fingerprints (name) {
        name -> Text,
        fingerprint -> Text,
    }
}

/// What the database says about one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// This database had no fingerprint for it: the one given is now recorded.
    First,
    /// It records the one given.
    Same,
    /// It recorded one of `retiring`, and now records the one given.
    Rotated,
    /// It records another key.
    Other,
}

/// Compares `fingerprint` with the one recorded under `name`, recording it
/// when there is none yet, or when the recorded one is among `retiring`
/// (a rotation). Of instances racing to record different keys, one wins
/// and the others see `Other`.
pub fn record(
    conn: &mut DbConnection,
    name: &str,
    fingerprint: &str,
    retiring: &[String],
) -> Result<Recorded, StoreError> {
    let recorded = |conn: &mut DbConnection| {
        key_fingerprints::table
            .find(name)
            .select(key_fingerprints::fingerprint)
            .get_result::<String>(conn)
            .optional()
    };
    let stored = match recorded(conn)? {
        Some(stored) => stored,
        None => {
            let inserted = diesel::insert_into(key_fingerprints::table)
                .values((
                    key_fingerprints::name.eq(name),
                    key_fingerprints::fingerprint.eq(fingerprint),
                ))
                .execute(conn);
            match inserted.map_err(StoreError::from) {
                Ok(_) => return Ok(Recorded::First),
                Err(StoreError::UniqueViolation) => recorded(conn)?.unwrap_or_default(),
                Err(error) => return Err(error),
            }
        }
    };
    if stored == fingerprint {
        return Ok(Recorded::Same);
    }
    if !retiring.contains(&stored) {
        return Ok(Recorded::Other);
    }
    // Only from the value read: of two instances rotating to different
    // keys at once, the second finds the first's key and is refused.
    let rotated = diesel::update(
        key_fingerprints::table
            .find(name)
            .filter(key_fingerprints::fingerprint.eq(&stored)),
    )
    .set(key_fingerprints::fingerprint.eq(fingerprint))
    .execute(conn)?;
    if rotated == 0 {
        return match recorded(conn)? {
            Some(now_stored) if now_stored == fingerprint => Ok(Recorded::Same),
            _ => Ok(Recorded::Other),
        };
    }
    Ok(Recorded::Rotated)
}
