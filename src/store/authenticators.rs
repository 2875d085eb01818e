//! A user's authenticators: each a sealed TOTP secret with its own name,
//! replay step and times. Unconfirmed until a code of its own is accepted;
//! at most one unconfirmed per user (a unique index says so).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::authenticators;
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = authenticators)]
pub struct AuthenticatorRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub totp_secret: Vec<u8>,
    pub totp_key_id: String,
    pub last_step: Option<i64>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = authenticators)]
pub struct NewAuthenticator<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub totp_secret: &'a [u8],
    pub totp_key_id: &'a str,
    pub created_at: NaiveDateTime,
}

/// Inserts an unconfirmed authenticator; a `UniqueViolation` means the
/// user already has one (a concurrent request stored it first).
pub fn insert(conn: &mut DbConnection, row: &NewAuthenticator<'_>) -> Result<(), StoreError> {
    diesel::insert_into(authenticators::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The user's confirmed authenticators, oldest first.
pub fn confirmed(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<AuthenticatorRow>, StoreError> {
    Ok(on_backend!(
        conn,
        authenticators::table
            .filter(authenticators::user_id.eq(user_id))
            .filter(authenticators::confirmed_at.is_not_null())
            .order((authenticators::created_at, authenticators::id))
            .select(AuthenticatorRow::as_select())
            .load(conn)
    )?)
}

/// The user's authenticator being enrolled, if any.
pub fn unconfirmed(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Option<AuthenticatorRow>, StoreError> {
    Ok(on_backend!(
        conn,
        authenticators::table
            .filter(authenticators::user_id.eq(user_id))
            .filter(authenticators::confirmed_at.is_null())
            .select(AuthenticatorRow::as_select())
            .get_result(conn)
            .optional()
    )?)
}

/// Forgets the user's enrolment in progress, if any.
pub fn delete_unconfirmed(conn: &mut DbConnection, user_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        authenticators::table
            .filter(authenticators::user_id.eq(user_id))
            .filter(authenticators::confirmed_at.is_null()),
    )
    .execute(conn)?)
}

/// Records `step` as the authenticator's last accepted step, and `at` as
/// its last use, if the step is newer than the one stored, in one
/// statement: one code is accepted once across every instance and
/// concurrent request. Returns false for a replay.
pub fn advance_step(
    conn: &mut DbConnection,
    id: &str,
    step: i64,
    at: NaiveDateTime,
) -> Result<bool, StoreError> {
    let update = diesel::update(
        authenticators::table.find(id).filter(
            authenticators::last_step
                .is_null()
                .or(authenticators::last_step.lt(step)),
        ),
    )
    .set((
        authenticators::last_step.eq(step),
        authenticators::last_used_at.eq(at),
    ));
    Ok(on_backend!(conn, update.execute(conn))? == 1)
}

/// Confirms an unconfirmed authenticator; returns whether it was one.
pub fn confirm(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> Result<bool, StoreError> {
    let update = diesel::update(
        authenticators::table
            .find(id)
            .filter(authenticators::confirmed_at.is_null()),
    )
    .set(authenticators::confirmed_at.eq(at));
    Ok(on_backend!(conn, update.execute(conn))? == 1)
}

/// Removes one authenticator of the user; returns whether it existed.
pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<bool, StoreError> {
    let deleted = diesel::delete(
        authenticators::table
            .find(id)
            .filter(authenticators::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

pub fn delete_all_for_user(conn: &mut DbConnection, user_id: &str) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(authenticators::table.filter(authenticators::user_id.eq(user_id)))
            .execute(conn)?,
    )
}

/// Authenticators whose secret is sealed under a key other than `key_id`.
pub fn sealed_under_other_keys(
    conn: &mut DbConnection,
    key_id: &str,
    limit: i64,
) -> Result<Vec<AuthenticatorRow>, StoreError> {
    Ok(authenticators::table
        .filter(authenticators::totp_key_id.ne(key_id))
        .order(authenticators::id)
        .limit(limit)
        .select(AuthenticatorRow::as_select())
        .load(conn)?)
}

/// Replaces a sealed secret if it is still `old_sealed_secret` (a
/// concurrent removal or re-enrolment wins, even under the same key);
/// returns whether it was.
pub fn reseal_secret(
    conn: &mut DbConnection,
    id: &str,
    old_sealed_secret: &[u8],
    sealed_secret: &[u8],
    key_id: &str,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        authenticators::table
            .find(id)
            .filter(authenticators::totp_secret.eq(old_sealed_secret)),
    )
    .set((
        authenticators::totp_secret.eq(sealed_secret),
        authenticators::totp_key_id.eq(key_id),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}
