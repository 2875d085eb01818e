//! Known devices: device tokens, kept only as SHA-256.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{device_tokens, users};
use super::{DbConnection, StoreError};

#[derive(Debug, Insertable)]
#[diesel(table_name = device_tokens)]
pub struct NewDevice<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, device: &NewDevice<'_>) -> Result<(), StoreError> {
    let insert = diesel::insert_into(device_tokens::table).values(device);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// Whether the token is live and belongs to the user of `username_key`.
pub fn is_live_for(
    conn: &mut DbConnection,
    token_hash: &str,
    username_key: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let found = device_tokens::table
        .inner_join(users::table)
        .filter(device_tokens::token_hash.eq(token_hash))
        .filter(users::username_key.eq(username_key))
        .filter(device_tokens::expires_at.gt(now))
        .select(device_tokens::token_hash)
        .get_result::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}

/// The hashes of the user's device tokens (which name their throttles).
pub fn hashes_for_user(conn: &mut DbConnection, user_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(device_tokens::table
        .filter(device_tokens::user_id.eq(user_id))
        .select(device_tokens::token_hash)
        .load(conn)?)
}

/// Forgets every device of the user.
pub fn delete_all_for_user(conn: &mut DbConnection, user_id: &str) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(device_tokens::table.filter(device_tokens::user_id.eq(user_id)))
            .execute(conn)?,
    )
}

pub fn delete_expired(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let old = diesel::alias!(device_tokens as old);
    let expired = old
        .filter(old.field(device_tokens::expires_at).lt(before))
        .select(old.field(device_tokens::token_hash))
        .limit(limit);
    Ok(
        diesel::delete(device_tokens::table.filter(device_tokens::token_hash.eq_any(expired)))
            .execute(conn)?,
    )
}
