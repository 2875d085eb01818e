//! SQLite's one writer, as a thread of its own: write transactions queue
//! here instead of taking turns on a lock, and those that queued while a
//! commit ran go into the next one together (group commit). Each keeps
//! its own outcome: it runs inside a savepoint that is rolled back if it
//! fails, and its answer is sent only once the shared commit has succeeded,
//! so nothing is acknowledged that a crash could lose, and one request's
//! failure undoes nothing of another's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak, mpsc};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use tokio::sync::oneshot;

use super::{ConnectionFactory, DbConnection, StoreError, write_transaction};

/// The most transactions one commit takes: bounds how long a request
/// waits behind others' work.
const MAX_BATCH: usize = 64;

/// Runs a queued transaction's work (inside its savepoint) on the
/// connection, or fails it if no transaction could start; returns what
/// sends its answer once the commit's outcome is known.
type Job = Box<dyn FnOnce(Result<&mut DbConnection, &StoreError>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;

/// A handle on the writer thread; the thread ends with the last handle.
#[derive(Clone)]
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
    /// Lives as long as a handle does (for threads that should not outlive
    /// the store, such as the checkpointer).
    alive: Arc<()>,
}

impl SqliteWriter {
    pub fn start(factory: ConnectionFactory) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&factory, &queue))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Self {
            jobs,
            alive: Arc::new(()),
        })
    }

    /// Gone once every handle is.
    pub fn liveness(&self) -> Weak<()> {
        Arc::downgrade(&self.alive)
    }

    /// Runs `work` in a write transaction; its result once committed.
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Ok(conn) => in_savepoint(conn, work),
                Err(error) => Err(copy_of(error).into()),
            };
            Box::new(move |committed: &Result<(), StoreError>| {
                let result = match (committed, outcome) {
                    (Ok(()), outcome) => outcome,
                    // Not committed: whatever it did is gone.
                    (Err(error), _) => Err(copy_of(error).into()),
                };
                // The request may have gone away meanwhile.
                let _ = answer.send(result);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Task("the SQLite writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Task("the SQLite writer dropped a transaction".into()))?
    }
}

/// `work` in a savepoint (the batch's transaction is open): kept if it
/// succeeds, rolled back if it fails or panics (a panic must not end the
/// writer thread).
fn in_savepoint<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    write_transaction(conn, |conn| {
        catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Task("a write transaction panicked".into()).into()))
    })
}

fn run(factory: &ConnectionFactory, queue: &mpsc::Receiver<Job>) {
    let mut connection: Option<DbConnection> = None;
    // Ends when every handle (and so every sender) is gone.
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let conn = match connection.take().map_or_else(|| connect(factory), Ok) {
            Ok(conn) => connection.insert(conn),
            Err(error) => {
                fail_all(batch, &error);
                continue;
            }
        };
        if let Err(error) = begin(conn) {
            fail_all(batch, &error);
            continue;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        let mut broken = false;
        for job in jobs.by_ref() {
            replies.push(job(Ok(&mut *conn)));
            // A savepoint that could not be rolled back (SQLite rolls the
            // whole transaction back on some errors): the jobs after it
            // must not run outside the transaction, nor any of the batch
            // count as done.
            if !in_outer_transaction(conn) {
                broken = true;
                break;
            }
        }
        let committed = if broken {
            let error = StoreError::Unavailable("the SQLite write transaction broke".into());
            for job in jobs {
                replies.push(job(Err(&error)));
            }
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(error)
        } else {
            commit(conn)
        };
        if committed.is_err() || conn.is_broken() {
            connection = None;
        }
        for reply in replies {
            reply(&committed);
        }
    }
}

/// Whether `conn` is still in the batch's transaction, and only in it.
fn in_outer_transaction(conn: &mut DbConnection) -> bool {
    matches!(
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(Some(depth)) if depth.get() == 1
    )
}

fn connect(factory: &ConnectionFactory) -> Result<DbConnection, StoreError> {
    factory
        .connect()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
/// transaction that reads first and then writes fails without waiting when
/// another process wrote in between.
fn begin(conn: &mut DbConnection) -> Result<(), StoreError> {
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            Ok(())
        }
        DbConnection::Postgres(_) => Err(StoreError::Task(
            "the SQLite writer was given a PostgreSQL connection".into(),
        )),
    }
}

fn commit(conn: &mut DbConnection) -> Result<(), StoreError> {
    let committed = <DbConnection as Connection>::TransactionManager::commit_transaction(conn);
    if committed.is_err() {
        // Leaves no transaction open behind a failed commit.
        let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
    }
    committed.map_err(StoreError::from)
}

/// Answers every job of `batch` with `error`, running none of them.
fn fail_all(batch: Vec<Job>, error: &StoreError) {
    tracing::warn!(%error, "SQLite write transaction could not start");
    for job in batch {
        job(Err(error))(&Ok(()));
    }
}

/// The same failure for another waiting request (the causes of a query
/// error cannot be cloned; their message is kept).
fn copy_of(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::UniqueViolation => StoreError::UniqueViolation,
        other => StoreError::Task(other.to_string()),
    }
}
