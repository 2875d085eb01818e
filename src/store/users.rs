//! The user aggregate: credentials and TOTP enrolment state.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub username_key: String,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_key_id: Option<String>,
    pub two_factor_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub username_key: &'a str,
    pub password_hash: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)?;
    Ok(())
}

pub fn find_by_key(
    conn: &mut DbConnection,
    username_key: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::username_key.eq(username_key))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn key_exists(conn: &mut DbConnection, username_key: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        users::table.filter(users::username_key.eq(username_key)),
    ))
    .get_result(conn)?)
}

/// Stores a freshly generated secret unless one is already there (a
/// concurrent setup won): returns whether this one was stored.
pub fn store_secret_if_absent(
    conn: &mut DbConnection,
    user_id: &str,
    sealed_secret: &[u8],
    key_id: &str,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::totp_secret.is_null())
            .filter(users::two_factor_enabled.eq(false)),
    )
    .set((
        users::totp_secret.eq(sealed_secret),
        users::totp_key_id.eq(key_id),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Records `step` as the last accepted TOTP step if it is newer than the one
/// stored, in one statement, so that one code is accepted once across every
/// instance and concurrent request. Returns false for a replay.
pub fn advance_totp_step(
    conn: &mut DbConnection,
    user_id: &str,
    step: i64,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        users::table.filter(users::id.eq(user_id)).filter(
            users::totp_last_step
                .is_null()
                .or(users::totp_last_step.lt(step)),
        ),
    )
    .set(users::totp_last_step.eq(step))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Turns two-factor on; returns whether it was off before.
pub fn enable_two_factor(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    let updated = diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::two_factor_enabled.eq(false)),
    )
    .set(users::two_factor_enabled.eq(true))
    .execute(conn)?;
    Ok(updated == 1)
}

pub fn find_by_id(conn: &mut DbConnection, user_id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .find(user_id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn set_password_hash(
    conn: &mut DbConnection,
    user_id: &str,
    password_hash: &str,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)?;
    Ok(())
}

/// Deletes the user; the database cascades to everything that references
/// it. False if there was no such user.
pub fn delete(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(users::table.find(user_id)).execute(conn)? == 1)
}

/// Turns two-factor off and forgets the secret (re-enrolment starts anew).
pub fn disable_two_factor(conn: &mut DbConnection, user_id: &str) -> Result<(), StoreError> {
    diesel::update(users::table.filter(users::id.eq(user_id)))
        .set((
            users::totp_secret.eq(None::<Vec<u8>>),
            users::totp_key_id.eq(None::<String>),
            users::two_factor_enabled.eq(false),
            users::totp_last_step.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Users whose TOTP secret is sealed under a key other than `key_id`.
pub fn sealed_under_other_keys(
    conn: &mut DbConnection,
    key_id: &str,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::totp_secret.is_not_null())
        .filter(users::totp_key_id.ne(key_id))
        .order(users::id)
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?)
}

/// Replaces a sealed secret if it is still `old_sealed_secret` (a
/// concurrent disable or re-enrolment wins, even under the same key);
/// returns whether it was.
pub fn reseal_secret(
    conn: &mut DbConnection,
    user_id: &str,
    old_sealed_secret: &[u8],
    sealed_secret: &[u8],
    key_id: &str,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::totp_secret.eq(old_sealed_secret)),
    )
    .set((
        users::totp_secret.eq(sealed_secret),
        users::totp_key_id.eq(key_id),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}
