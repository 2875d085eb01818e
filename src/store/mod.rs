//! Persistence: diesel over one pool that speaks SQLite or PostgreSQL, picked
//! from the database URL. Everything here is synchronous and runs on tokio's
//! blocking threads through [`Store::read`] and [`Store::transaction`].
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` binds
//! `LIMIT ?`, and SQLite re-plans a statement whose LIMIT is a parameter on
//! every execution, which cost more than the query itself.

/// Runs `$run` with `$conn` bound to the backend's own connection, not the
/// `MultiConnection`: the hot queries, so that the backend's statement cache
/// finds them without their SQL being built again (the `MultiConnection`
/// serialises every query anew, which cost a tenth of the SQLite writer's
/// time per sign-in).
macro_rules! on_backend {
    ($conn:ident, $run:expr) => {
        match $conn {
            $crate::store::DbConnection::Postgres($conn) => $run,
            $crate::store::DbConnection::Sqlite($conn) => $run,
        }
    };
}

pub mod authenticators;
pub mod change_feed;
pub mod devices;
pub mod key_fingerprints;
pub mod pending;
pub mod recovery_codes;
pub mod schema;
pub mod security_log;
pub mod sessions;
mod sqlite_writer;
pub mod throttle;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use sqlite_writer::SqliteWriter;
use tokio::sync::Semaphore;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Arbitrary constant naming the advisory lock that serialises migrations
/// when several instances start against one PostgreSQL at once.
const MIGRATION_LOCK_ID: i64 = 0x006f_7470_6761_7465;

/// How long a request waits for a connection unless configured otherwise.
const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Where the data lives; the backend follows the URL's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://` or `postgresql://` selects PostgreSQL; anything else is a
    /// SQLite path, with or without a `sqlite://` prefix.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("the SQLite path is empty".into());
        }
        if path.contains("://") {
            return Err("unsupported scheme (use postgres://, sqlite:// or a file path)".into());
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// A form safe to log: no user info (`user:password@`), and no
    /// password among the query parameters.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => {
                let (address, query) = match url.split_once('?') {
                    Some((address, query)) => (address, Some(query)),
                    None => (url.as_str(), None),
                };
                let mut redacted = match (address.find("://"), address.rfind('@')) {
                    (Some(scheme_end), Some(at)) if at > scheme_end => {
                        format!("{}://***{}", &address[..scheme_end], &address[at..])
                    }
                    _ => address.to_owned(),
                };
                if let Some(query) = query {
                    let parameters: Vec<String> = query
                        .split('&')
                        .map(|parameter| match parameter.split_once('=') {
                            Some((key, _)) if SECRET_PARAMETERS.contains(&key) => {
                                format!("{key}=***")
                            }
                            _ => parameter.to_owned(),
                        })
                        .collect();
                    redacted = format!("{redacted}?{}", parameters.join("&"));
                }
                redacted
            }
        }
    }
}

/// libpq connection parameters that hold secrets.
const SECRET_PARAMETERS: [&str; 2] = ["password", "sslpassword"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("database query failed: {0}")]
    Query(#[source] DieselError),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("blocking database task failed: {0}")]
    Task(String),
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Self::UniqueViolation
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            DieselError::BrokenTransactionManager => Self::Unavailable(error.to_string()),
            // SQLite's busy timeout ran out: another process holds the
            // write lock. Worth a retry (503), not an internal error.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().starts_with("database is locked") =>
            {
                Self::Unavailable(info.message().to_owned())
            }
            _ => Self::Query(error),
        }
    }
}

/// Opens connections of the backend the URL names. diesel's own
/// `MultiConnection::establish` tries every backend in turn and reports the
/// last failure, which hides why PostgreSQL refused.
#[derive(Debug)]
struct ConnectionFactory {
    url: DatabaseUrl,
}

impl ManageConnection for ConnectionFactory {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                // OpenSSL (libpq's TLS) initialised without its exit-time
                // cleanup, before libpq can initialise it with one: that
                // cleanup frees what a connection still in use on another
                // thread holds when the process exits (seen as double frees
                // and segfaults at the end of test runs).
                openssl_sys::init();
                PgConnection::establish(url)
                    .map(DbConnection::Postgres)
                    .map_err(r2d2::Error::ConnectionError)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                // Per-connection settings; WAL is a property of the file and
                // is set once in `Store::open`.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 20000;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Handle on the database: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionFactory>,
    /// SQLite only: the thread that runs every write transaction of this
    /// process. SQLite serialises writers anyway; queueing them there avoids
    /// its busy handler (which sleeps and retries and wastes most of the
    /// wait) and lets one commit carry many transactions.
    sqlite_writer: Option<SqliteWriter>,
    /// How long a request waits for a connection: bounded, so that while
    /// the database is away requests fail fast instead of piling up.
    checkout_timeout: Duration,
    /// One per pooled connection: taken before a blocking thread is.
    turns: Arc<Semaphore>,
    url: DatabaseUrl,
}

/// The pool's connections at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub max_size: u32,
    pub connections: u32,
    pub idle: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects, brings the schema up to date and builds the pool.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Self, StoreError> {
        let factory = ConnectionFactory { url: url.clone() };
        if let DatabaseUrl::Sqlite(path) = url {
            create_sqlite_file(path)?;
        }
        let mut first = factory
            .connect()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if let DbConnection::Sqlite(conn) = &mut first {
            // Readers never block the writer, and vice versa.
            conn.batch_execute("PRAGMA journal_mode = WAL;")?;
        }
        run_migrations(&mut first)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // Connections are opened on demand, never in the background:
            // a background connect racing process exit crashed inside
            // OpenSSL's exit-time cleanup (libpq's TLS handshake).
            .min_idle(Some(0))
            .connection_timeout(DEFAULT_CHECKOUT_TIMEOUT)
            .test_on_check_out(false)
            .build(factory)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let sqlite_writer = match url {
            DatabaseUrl::Sqlite(_) => {
                let writer = SqliteWriter::start(ConnectionFactory { url: url.clone() })?;
                spawn_checkpointer(pool.clone(), writer.liveness());
                Some(writer)
            }
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            sqlite_writer,
            checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            turns: Arc::new(Semaphore::new(pool_size as usize)),
            url: url.clone(),
        })
    }

    /// This store with requests waiting at most `timeout` for a connection.
    pub fn with_checkout_timeout(self, timeout: Duration) -> Self {
        Self {
            checkout_timeout: timeout,
            ..self
        }
    }

    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    /// Applies pending migrations and returns how many ran.
    pub fn migrate(url: &DatabaseUrl) -> Result<usize, StoreError> {
        if let DatabaseUrl::Sqlite(path) = url {
            create_sqlite_file(path)?;
        }
        let mut conn = ConnectionFactory { url: url.clone() }
            .connect()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        run_migrations(&mut conn)
    }

    /// Runs `work` on a pooled connection on a blocking thread.
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (pool, timeout) = (self.pool.clone(), self.checkout_timeout);
        // A turn first, without a thread: a blocking thread per request
        // waiting for a connection would cost a stack and a malloc arena
        // each (tens of MiB at 64 connections) to wait for nothing.
        let waiting = crate::metrics::db_pool_wait();
        let turn = tokio::time::timeout(timeout, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("timed out waiting for a connection".into()))?
            .map_err(|e| StoreError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let checked_out = pool.get_timeout(timeout);
            drop(waiting);
            let mut conn = checked_out.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let _turn = turn;
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `work` in one write transaction: all of it commits or none does.
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.sqlite_writer {
            Some(writer) => writer.transaction(work).await,
            None => self.read(move |conn| write_transaction(conn, work)).await,
        }
    }

    /// Follows the accounts whose sessions or user row change, on a thread
    /// and connection of its own (see [`change_feed`]).
    pub fn change_feed(
        &self,
        on_change: Box<dyn Fn(change_feed::Change) + Send>,
    ) -> Result<change_feed::ChangeFeed, StoreError> {
        change_feed::ChangeFeed::start(self.url.clone(), on_change)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.ping().map_err(StoreError::from))
            .await
    }
}

/// Copies SQLite's write-ahead log into the database twice a second on a
/// thread of its own, so that no request's commit pays for a checkpoint (and
/// its fsync). Stops once the `Store` is gone. Connections also checkpoint
/// by themselves past 20,000 pages, should this thread fall behind.
fn spawn_checkpointer(pool: r2d2::Pool<ConnectionFactory>, store_alive: Weak<()>) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while store_alive.strong_count() > 0 {
                std::thread::sleep(Duration::from_millis(500));
                if let Ok(mut conn) = pool.get()
                    && let Err(error) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                {
                    tracing::warn!(%error, "SQLite checkpoint failed");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no SQLite checkpoint thread: commits will checkpoint");
    }
}

/// `work` in a transaction: committed if it succeeds, rolled back if not.
/// On a connection already in one (SQLite's writer) diesel makes it a
/// savepoint. PostgreSQL's write transactions run it on a pooled connection.
fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    <DbConnection as Connection>::TransactionManager::begin_transaction(conn)
        .map_err(StoreError::from)?;
    match work(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(StoreError::from)?;
            Ok(value)
        }
        Err(error) => {
            <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
                .map_err(StoreError::from)?;
            Err(error)
        }
    }
}

fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let migration_error =
        |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    match conn {
        DbConnection::Sqlite(conn) => conn
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|applied| applied.len())
            .map_err(migration_error),
        DbConnection::Postgres(conn) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                .execute(conn)?;
            let applied = conn
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|applied| applied.len())
                .map_err(migration_error);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                .execute(conn)?;
            applied
        }
    }
}

/// Creates the SQLite file, and its directory, if missing: the file with
/// mode 0600 since it holds password hashes and encrypted secrets. SQLite
/// gives its `-wal` and `-shm` files the mode of the database file.
fn create_sqlite_file(path: &Path) -> Result<(), StoreError> {
    let unavailable = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    // In-memory databases and `file:` URIs are SQLite's to handle.
    if path
        .to_str()
        .is_some_and(|path| path == ":memory:" || path.starts_with("file:"))
    {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| unavailable(dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    // Opens an existing file as it is (neither truncated nor re-moded).
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|e| unavailable(path, e))
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    fn redacted(url: &str) -> String {
        DatabaseUrl::parse(url).unwrap().redacted()
    }

    #[test]
    fn redaction_hides_the_user_info() {
        assert_eq!(redacted("postgres://u:pw@db/otp"), "postgres://***@db/otp");
        assert_eq!(
            redacted("postgresql://u:p@ss@db:5432/otp"),
            "postgresql://***@db:5432/otp"
        );
        assert_eq!(redacted("postgres://db/otp"), "postgres://db/otp");
    }

    #[test]
    fn redaction_hides_passwords_in_the_query() {
        assert_eq!(
            redacted("postgres://host/db?password=secret"),
            "postgres://host/db?password=***"
        );
        assert_eq!(
            redacted("postgres://u:pw@host/db?user=x&password=secret&sslmode=require"),
            "postgres://***@host/db?user=x&password=***&sslmode=require"
        );
        assert_eq!(
            redacted("postgres://host/db?sslpassword=secret&mail=a@b"),
            "postgres://host/db?sslpassword=***&mail=a@b"
        );
    }
}
