//! Recovery codes, kept only as keyed hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::recovery_codes;
use super::{DbConnection, StoreError};

#[derive(Debug, Insertable)]
#[diesel(table_name = recovery_codes)]
struct NewRecoveryCode<'a> {
    user_id: &'a str,
    code_hash: &'a str,
    created_at: NaiveDateTime,
}

/// Replaces every code of the user with these.
pub fn replace_all(
    conn: &mut DbConnection,
    user_id: &str,
    code_hashes: &[String],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    delete_all(conn, user_id)?;
    let rows: Vec<_> = code_hashes
        .iter()
        .map(|code_hash| NewRecoveryCode {
            user_id,
            code_hash,
            created_at: now,
        })
        .collect();
    // One multi-row INSERT; it does not go through diesel's MultiConnection
    // (SQLite's batch form differs).
    let insert = diesel::insert_into(recovery_codes::table).values(&rows);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// Marks an unused code used, given the hashes it may be stored under;
/// false when there is no such unused code (so of two concurrent uses, one
/// wins).
pub fn spend(
    conn: &mut DbConnection,
    user_id: &str,
    code_hashes: &[String],
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq_any(code_hashes))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

pub fn delete_all(conn: &mut DbConnection, user_id: &str) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?,
    )
}

pub fn count_unused(conn: &mut DbConnection, user_id: &str) -> Result<i64, StoreError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}
