//! The per-user security log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::auth_events;
use super::{DbConnection, StoreError};

#[derive(Debug, Insertable)]
#[diesel(table_name = auth_events)]
pub struct NewEvent<'a> {
    pub user_id: &'a str,
    pub event_type: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = auth_events)]
pub struct EventRow {
    pub event_type: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, event: &NewEvent<'_>) -> Result<(), StoreError> {
    let insert = diesel::insert_into(auth_events::table).values(event);
    on_backend!(conn, insert.execute(conn))?;
    Ok(())
}

/// The user's newest events first.
pub fn latest(
    conn: &mut DbConnection,
    user_id: &str,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(auth_events::table
        .filter(auth_events::user_id.eq(user_id))
        .order(auth_events::id.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

/// Forgets events older than `before`.
/// Deletes up to `limit` events older than `before`; returns how many.
pub fn delete_older_than(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let old = diesel::alias!(auth_events as old);
    let oldest = old
        .filter(old.field(auth_events::created_at).lt(before))
        .select(old.field(auth_events::id))
        .limit(limit);
    Ok(diesel::delete(auth_events::table.filter(auth_events::id.eq_any(oldest))).execute(conn)?)
}
