//! Where the data lives: the data dir, the database and its pool.

use std::path::PathBuf;

use super::source::Source;
use super::{ConfigError, Overrides};
use crate::store::DatabaseUrl;

pub const DATA_DIR: &str = "OTPGATE_DATA_DIR";

/// The SQLite file used when `DATABASE_URL` is unset.
const DEFAULT_SQLITE_FILE: &str = "otpgate.db";

pub(super) struct DatabaseSettings {
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub db_pool_size: u32,
    pub db_pool_timeout: std::time::Duration,
}

pub(super) fn read(source: Source, overrides: &Overrides) -> Result<DatabaseSettings, ConfigError> {
    let data_dir = source
        .flag("data_dir", &overrides.data_dir)
        .value(DATA_DIR, "data", |raw| Ok(PathBuf::from(raw)))?;
    let database_url = source
        .flag("database_url", &overrides.database_url)
        .optional(
            "DATABASE_URL",
            &format!("{DEFAULT_SQLITE_FILE} in the data dir"),
            DatabaseUrl::parse,
        )?
        .unwrap_or_else(|| DatabaseUrl::Sqlite(data_dir.join(DEFAULT_SQLITE_FILE)));
    let db_pool_size = source.number("OTPGATE_DB_POOL_SIZE", 10, 1..=200)? as u32;
    // How long a request waits for a connection before answering 503: short,
    // so that a database outage fails requests fast instead of piling them up.
    let db_pool_timeout = source.number("OTPGATE_DB_POOL_TIMEOUT_MS", 3000, 50..=60_000)?;
    Ok(DatabaseSettings {
        data_dir,
        database_url,
        db_pool_size,
        db_pool_timeout: std::time::Duration::from_millis(db_pool_timeout as u64),
    })
}
