//! The user aggregate: credentials and whether two-factor is on (the
//! secrets are its authenticators').

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
    pub two_factor_enabled: bool,
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
    on_backend!(
        conn,
        diesel::insert_into(users::table).values(user).execute(conn)
    )?;
    Ok(())
}

pub fn find_by_key(
    conn: &mut DbConnection,
    username_key: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(on_backend!(
        conn,
        users::table
            .filter(users::username_key.eq(username_key))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()
    )?)
}

pub fn key_exists(conn: &mut DbConnection, username_key: &str) -> Result<bool, StoreError> {
    Ok(on_backend!(
        conn,
        diesel::select(diesel::dsl::exists(
            users::table.filter(users::username_key.eq(username_key)),
        ))
        .get_result(conn)
    )?)
}

/// Turns two-factor on; returns whether it was off before.
pub fn enable_two_factor(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    let update = diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::two_factor_enabled.eq(false)),
    )
    .set(users::two_factor_enabled.eq(true));
    Ok(on_backend!(conn, update.execute(conn))? == 1)
}

pub fn find_by_id(conn: &mut DbConnection, user_id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(on_backend!(
        conn,
        users::table
            .find(user_id)
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()
    )?)
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

/// Turns two-factor off (its authenticators are erased separately).
pub fn disable_two_factor(conn: &mut DbConnection, user_id: &str) -> Result<(), StoreError> {
    diesel::update(users::table.filter(users::id.eq(user_id)))
        .set(users::two_factor_enabled.eq(false))
        .execute(conn)?;
    Ok(())
}
