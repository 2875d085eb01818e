//! Pending-2FA tokens: issued after the password, spent by the second factor.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{pending_tokens, users};
use super::users::UserRow;
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pending_tokens)]
pub struct PendingRow {
    pub jti: String,
    pub user_id: String,
    pub failed_attempts: i32,
    pub consumed_at: Option<NaiveDateTime>,
    pub expires_at: NaiveDateTime,
    /// The login behind it carried a valid device token.
    pub known_device: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = pending_tokens)]
pub struct NewPending<'a> {
    pub jti: &'a str,
    pub user_id: &'a str,
    pub expires_at: NaiveDateTime,
    pub known_device: bool,
}

pub fn insert(conn: &mut DbConnection, pending: &NewPending<'_>) -> Result<(), StoreError> {
    let insert = diesel::insert_into(pending_tokens::table).values(pending);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// The token's row with its user, if the token was issued to that user.
pub fn find_with_user(
    conn: &mut DbConnection,
    jti: &str,
    user_id: &str,
) -> Result<Option<(PendingRow, UserRow)>, StoreError> {
    Ok(on_backend!(
        conn,
        pending_tokens::table
            .inner_join(users::table)
            .filter(pending_tokens::jti.eq(jti))
            .filter(pending_tokens::user_id.eq(user_id))
            .select((PendingRow::as_select(), UserRow::as_select()))
            .get_result(conn)
            .optional()
    )?)
}

/// Counts one failed code against a live token, atomically (a spent or
/// dead token is left as it is).
pub fn record_failure(
    conn: &mut DbConnection,
    jti: &str,
    max_attempts: i32,
) -> Result<(), StoreError> {
    let update = diesel::update(
        pending_tokens::table
            .filter(pending_tokens::jti.eq(jti))
            .filter(pending_tokens::consumed_at.is_null())
            .filter(pending_tokens::failed_attempts.lt(max_attempts)),
    )
    .set(pending_tokens::failed_attempts.eq(pending_tokens::failed_attempts + 1));
    on_backend!(conn, update.execute(conn))?;
    Ok(())
}

/// Spends a live token; returns false when it was spent, dead or expired
/// already (a concurrent request got there first).
pub fn consume(
    conn: &mut DbConnection,
    jti: &str,
    max_attempts: i32,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let update = diesel::update(
        pending_tokens::table
            .filter(pending_tokens::jti.eq(jti))
            .filter(pending_tokens::consumed_at.is_null())
            .filter(pending_tokens::failed_attempts.lt(max_attempts))
            .filter(pending_tokens::expires_at.gt(now)),
    )
    .set(pending_tokens::consumed_at.eq(now));
    Ok(on_backend!(conn, update.execute(conn))? == 1)
}

/// Forgets tokens that can no longer be used.
pub fn delete_expired(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let old = diesel::alias!(pending_tokens as old);
    let expired = old
        .filter(old.field(pending_tokens::expires_at).lt(before))
        .select(old.field(pending_tokens::jti))
        .limit(limit);
    Ok(
        diesel::delete(pending_tokens::table.filter(pending_tokens::jti.eq_any(expired)))
            .execute(conn)?,
    )
}

/// Spends every outstanding pending token of the user.
pub fn consume_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        pending_tokens::table
            .filter(pending_tokens::user_id.eq(user_id))
            .filter(pending_tokens::consumed_at.is_null()),
    )
    .set(pending_tokens::consumed_at.eq(now))
    .execute(conn)?)
}
