//! Throttling state: failure counters and token buckets, one row per key.
//! Each read here locks its row (PostgreSQL `FOR UPDATE`; SQLite write
//! transactions are serialised already) until the transaction ends.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{check_claims, failure_counters, rate_buckets};
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, Copy, Default, Queryable, Selectable, AsChangeset, Insertable)]
#[diesel(table_name = failure_counters)]
pub struct CounterRow {
    pub failures: i32,
    pub last_failure_at: i64,
    pub locked_until: i64,
    pub lockouts: i32,
    pub window_start: i64,
    pub window_failures: i32,
    pub previous_window_failures: i32,
}

/// The counter for `key` (zeros if new), locked for this transaction.
pub fn lock_counter(conn: &mut DbConnection, key: &str) -> Result<CounterRow, StoreError> {
    // `ON CONFLICT` and `FOR UPDATE` do not go through diesel's
    // MultiConnection: run them on the backend's own connection.
    Ok(match conn {
        // One round trip: a row, new or old, locked by the no-op update
        // (a new row is needed to lock an account that has none yet).
        DbConnection::Postgres(pg) => diesel::insert_into(failure_counters::table)
            .values(failure_counters::key.eq(key))
            .on_conflict(failure_counters::key)
            .do_update()
            .set(failure_counters::key.eq(excluded(failure_counters::key)))
            .returning(CounterRow::as_returning())
            .get_result(pg)?,
        // Write transactions are serialised already: a read is enough, and
        // an account without a row needs none until it has something to
        // count ([`save_counter`] creates it).
        DbConnection::Sqlite(sqlite) => failure_counters::table
            .find(key)
            .select(CounterRow::as_select())
            .get_result(sqlite)
            .optional()?
            .unwrap_or_default(),
    })
}

/// Stores the counter for `key`, creating its row if it has none.
pub fn save_counter(
    conn: &mut DbConnection,
    key: &str,
    row: &CounterRow,
) -> Result<(), StoreError> {
    let upsert = diesel::insert_into(failure_counters::table)
        .values((failure_counters::key.eq(key), *row))
        .on_conflict(failure_counters::key)
        .do_update()
        .set(row);
    on_backend!(conn, upsert.execute(conn))?;
    Ok(())
}

/// The bucket for `key` as (tokens, refilled_at), created with `initial`
/// if new, locked for this transaction.
pub fn lock_bucket(
    conn: &mut DbConnection,
    key: &str,
    initial: (f64, f64),
) -> Result<(f64, f64), StoreError> {
    let insert = diesel::insert_into(rate_buckets::table).values((
        rate_buckets::key.eq(key),
        rate_buckets::tokens.eq(initial.0),
        rate_buckets::refilled_at.eq(initial.1),
    ));
    let query = rate_buckets::table
        .find(key)
        .select((rate_buckets::tokens, rate_buckets::refilled_at));
    Ok(match conn {
        DbConnection::Postgres(pg) => {
            insert.on_conflict_do_nothing().execute(pg)?;
            query.for_update().get_result(pg)?
        }
        DbConnection::Sqlite(sqlite) => {
            insert.on_conflict_do_nothing().execute(sqlite)?;
            query.get_result(sqlite)?
        }
    })
}

pub fn save_bucket(
    conn: &mut DbConnection,
    key: &str,
    tokens: f64,
    refilled_at: f64,
) -> Result<(), StoreError> {
    diesel::update(rate_buckets::table.find(key))
        .set((
            rate_buckets::tokens.eq(tokens),
            rate_buckets::refilled_at.eq(refilled_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets counters and buckets idle since `before` (Unix seconds) that
/// hold no lock.
pub fn delete_idle(conn: &mut DbConnection, before: i64) -> Result<usize, StoreError> {
    let counters = diesel::delete(
        failure_counters::table
            .filter(failure_counters::last_failure_at.lt(before))
            .filter(failure_counters::locked_until.lt(before)),
    )
    .execute(conn)?;
    let buckets =
        diesel::delete(rate_buckets::table.filter(rate_buckets::refilled_at.lt(before as f64)))
            .execute(conn)?;
    Ok(counters + buckets)
}

/// Claims `key` until `until` (Unix seconds) unless a live claim holds it;
/// true when claimed. One statement decides, so of two racing claimants
/// on any instance one wins.
pub fn claim(conn: &mut DbConnection, key: &str, now: i64, until: i64) -> Result<bool, StoreError> {
    let insert = diesel::insert_into(check_claims::table).values((
        check_claims::key.eq(key),
        check_claims::held_until.eq(0_i64),
    ));
    // `ON CONFLICT` does not go through diesel's MultiConnection.
    on_backend!(conn, insert.on_conflict_do_nothing().execute(conn))?;
    let claimed = diesel::update(
        check_claims::table
            .find(key)
            .filter(check_claims::held_until.le(now)),
    )
    .set(check_claims::held_until.eq(until))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Ends the claim taken until `held_until`, if it is still that one: a
/// holder that outlived its claim must not end its successor's.
pub fn release_claim(
    conn: &mut DbConnection,
    key: &str,
    held_until: i64,
) -> Result<(), StoreError> {
    diesel::delete(
        check_claims::table
            .find(key)
            .filter(check_claims::held_until.eq(held_until)),
    )
    .execute(conn)?;
    Ok(())
}

/// Forgets every counter, bucket and claim under these keys (an account
/// being deleted leaves nothing of itself behind).
pub fn delete_keys(conn: &mut DbConnection, keys: &[String]) -> Result<usize, StoreError> {
    let counters =
        diesel::delete(failure_counters::table.filter(failure_counters::key.eq_any(keys)))
            .execute(conn)?;
    let buckets =
        diesel::delete(rate_buckets::table.filter(rate_buckets::key.eq_any(keys))).execute(conn)?;
    let claims =
        diesel::delete(check_claims::table.filter(check_claims::key.eq_any(keys))).execute(conn)?;
    Ok(counters + buckets + claims)
}
