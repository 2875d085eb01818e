//! Sessions: created by a second factor, named by the access token's `sid`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{refresh_tokens, sessions, users};
use super::users::UserRow;
use super::{DbConnection, StoreError};

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub amr: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert(conn: &mut DbConnection, session: &NewSession<'_>) -> Result<(), StoreError> {
    let insert = diesel::insert_into(sessions::table).values(session);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// The session's user and the session's end, if the session is live: one
/// indexed lookup, for every request with an access token the session
/// cache cannot vouch for.
pub fn live_user(
    conn: &mut DbConnection,
    session_id: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Option<(UserRow, NaiveDateTime)>, StoreError> {
    Ok(on_backend!(
        conn,
        sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .select((UserRow::as_select(), sessions::expires_at))
            .get_result(conn)
            .optional()
    )?)
}

/// Revokes one live session; returns false if it was not live.
pub fn revoke(
    conn: &mut DbConnection,
    session_id: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub amr: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The user's live sessions, newest first.
pub fn list_live(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// Every session id the user ever had, live or not.
pub fn ids_for_user(conn: &mut DbConnection, user_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::id)
        .load(conn)?)
}

/// Records a refresh of the session.
pub fn touch(
    conn: &mut DbConnection,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let update =
        diesel::update(sessions::table.find(session_id)).set(sessions::last_used_at.eq(now));
    on_backend!(conn, update.execute(conn))?;
    Ok(())
}

/// Revokes every live session of the user but `keep`; returns how many.
pub fn revoke_others(
    conn: &mut DbConnection,
    user_id: &str,
    keep: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    pub token_hash: String,
    pub session_id: String,
    pub expires_at: NaiveDateTime,
    pub rotated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefresh<'a> {
    pub token_hash: &'a str,
    pub session_id: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

pub fn insert_refresh(conn: &mut DbConnection, refresh: &NewRefresh<'_>) -> Result<(), StoreError> {
    let insert = diesel::insert_into(refresh_tokens::table).values(refresh);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// A refresh token by hash, with its session.
pub fn find_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<(RefreshRow, SessionRow)>, StoreError> {
    Ok(on_backend!(
        conn,
        refresh_tokens::table
            .inner_join(sessions::table)
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((RefreshRow::as_select(), SessionRow::as_select()))
            .get_result(conn)
            .optional()
    )?)
}

/// Retires the current refresh token; false if it was already retired (a
/// concurrent refresh won, or this is a reuse).
pub fn rotate_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let update = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::rotated_at.is_null()),
    )
    .set(refresh_tokens::rotated_at.eq(now));
    Ok(on_backend!(conn, update.execute(conn))? == 1)
}

/// Revokes a session whatever its state; returns whether it was live.
pub fn revoke_by_id(
    conn: &mut DbConnection,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Revokes every live session of the user; returns how many.
pub fn revoke_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?)
}

pub fn count_live(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<i64, StoreError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)?)
}

/// Forgets sessions (and their refresh tokens) that ended before `before`.
pub fn delete_ended(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let old = diesel::alias!(sessions as old);
    let ended = old
        .filter(
            old.field(sessions::expires_at)
                .lt(before)
                .or(old.field(sessions::revoked_at).lt(before)),
        )
        .select(old.field(sessions::id))
        .limit(limit);
    Ok(diesel::delete(sessions::table.filter(sessions::id.eq_any(ended))).execute(conn)?)
}
