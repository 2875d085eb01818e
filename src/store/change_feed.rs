//! The accounts whose sessions or user row changed, as the database tells
//! it (migration 000008's triggers): PostgreSQL notifies
//! `otpgate_account_changes` at commit; SQLite appends to `account_changes`.
//! A cache of live sessions asks [`ChangeFeed::caught_up`] before it trusts
//! an entry: that waits for a read of the feed that *began after the call*,
//! so every change committed before the request arrived, by any instance
//! or process, has been seen. One thread with a connection of its own does
//! the reads, one for however many requests are waiting.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::r2d2::ManageConnection;
use tokio::sync::watch;

use super::{ConnectionFactory, DatabaseUrl, DbConnection, StoreError};

/// The PostgreSQL channel the triggers notify.
const CHANNEL: &str = "otpgate_account_changes";
/// How often the feed is read when no request asks.
const IDLE_READ: Duration = Duration::from_secs(1);
/// After a failed read, how long requests are told "not caught up" (and go
/// to the database themselves) before the feed reconnects.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The sessions or the user row of this user id.
    Account(String),
    /// Unknown: the feed (re)started or lost track; forget everything.
    Everything,
}

/// A handle on the feed's thread; the thread stops when this is dropped.
pub struct ChangeFeed {
    shared: Arc<Shared>,
    /// (reads finished, whether the last one succeeded)
    finished: watch::Receiver<(u64, bool)>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Reads begun so far.
    begun: u64,
    /// A request waits for a read that has not begun yet.
    wanted: bool,
    /// The reader waits for one (and must be woken).
    idle: bool,
    stopping: bool,
}

impl ChangeFeed {
    /// Starts the feed's thread; `on_change` runs on it for every change
    /// seen, before the read that saw it counts as finished.
    pub(super) fn start(
        url: DatabaseUrl,
        on_change: Box<dyn Fn(Change) + Send>,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let (finished_tx, finished) = watch::channel((0, false));
        let reader = Reader {
            factory: ConnectionFactory { url },
            connection: None,
            last_failure: None,
            on_change,
        };
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("change-feed".into())
            .spawn(move || reader.run(&thread_shared, &finished_tx))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Self { shared, finished })
    }

    /// Waits until the feed has been read from a start later than this
    /// call; false if that read failed (the feed cannot vouch for anything
    /// right now).
    pub async fn caught_up(&self) -> bool {
        let (target, idle) = {
            let mut state = self.shared.lock();
            state.wanted = true;
            (state.begun + 1, std::mem::take(&mut state.idle))
        };
        // A busy reader starts the next read by itself (no system call).
        if idle {
            self.shared.wake.notify_one();
        }
        let mut finished = self.finished.clone();
        match finished.wait_for(|(done, _)| *done >= target).await {
            Ok(read) => read.1,
            // The thread is gone (it only stops with this handle).
            Err(_) => false,
        }
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Reader {
    factory: ConnectionFactory,
    connection: Option<Listening>,
    last_failure: Option<Instant>,
    on_change: Box<dyn Fn(Change) + Send>,
}

/// The feed's own connection, positioned after what it has reported.
enum Listening {
    Postgres(PgConnection),
    /// The newest `account_changes.seq` reported.
    Sqlite(SqliteConnection, i64),
}

// SQLite only (PostgreSQL notifies instead); not in `schema.rs`, which
// both backends share.
diesel::table! {
    account_changes (seq) {
        seq -> BigInt,
        user_id -> Text,
    }
}

impl Reader {
    fn run(mut self, shared: &Shared, finished: &watch::Sender<(u64, bool)>) {
        loop {
            let read = {
                let mut state = shared.lock();
                while !state.wanted && !state.stopping {
                    state.idle = true;
                    let (woken, waited) = shared
                        .wake
                        .wait_timeout(state, IDLE_READ)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    state = woken;
                    if waited.timed_out() {
                        // Read anyway: PostgreSQL queues notifications for
                        // a listener until it reads them, for every
                        // instance's commits, and an unread queue grows.
                        break;
                    }
                }
                if state.stopping {
                    return;
                }
                state.wanted = false;
                state.idle = false;
                state.begun += 1;
                state.begun
            };
            let ok = self.read();
            finished.send_replace((read, ok));
        }
    }

    /// Reports every change committed before this call; false if it could
    /// not tell.
    fn read(&mut self) -> bool {
        if self.connection.is_none() {
            if self
                .last_failure
                .is_some_and(|failed| failed.elapsed() < RETRY_AFTER)
            {
                return false;
            }
            match self.connect() {
                Ok(listening) => self.connection = Some(listening),
                Err(error) => return self.failed(&error),
            }
            // Whatever changed before the feed listened went unseen.
            (self.on_change)(Change::Everything);
        }
        let Some(listening) = self.connection.as_mut() else {
            return false;
        };
        match listening.read(&self.on_change) {
            Ok(()) => true,
            Err(error) => {
                self.connection = None;
                (self.on_change)(Change::Everything);
                self.failed(&error)
            }
        }
    }

    fn failed(&mut self, error: &StoreError) -> bool {
        tracing::warn!(%error, "the session cache's change feed failed; sessions are read from the database meanwhile");
        self.last_failure = Some(Instant::now());
        false
    }

    fn connect(&self) -> Result<Listening, StoreError> {
        let connection = self
            .factory
            .connect()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(match connection {
            DbConnection::Postgres(mut pg) => {
                diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut pg)?;
                Listening::Postgres(pg)
            }
            DbConnection::Sqlite(mut sqlite) => {
                let newest: Option<i64> = account_changes::table
                    .select(diesel::dsl::max(account_changes::seq))
                    .get_result(&mut sqlite)?;
                Listening::Sqlite(sqlite, newest.unwrap_or(0))
            }
        })
    }
}

impl Listening {
    fn read(&mut self, on_change: &dyn Fn(Change)) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pg) => {
                // A round trip: the server delivers, before it answers, every
                // notification committed before the query arrived.
                diesel::sql_query("SELECT 1").execute(pg)?;
                for notification in pg.notifications_iter() {
                    on_change(Change::Account(notification?.payload));
                }
            }
            Self::Sqlite(sqlite, last) => {
                // From the last row reported: if it is gone, the bounded
                // table dropped rows this feed never saw.
                let rows: Vec<(i64, String)> = account_changes::table
                    .filter(account_changes::seq.ge(*last))
                    .order(account_changes::seq)
                    .load(sqlite)?;
                let first = rows.first().map(|(seq, _)| *seq);
                let gap = if *last > 0 {
                    first != Some(*last)
                } else {
                    first.is_some_and(|seq| seq > 1)
                };
                if gap {
                    on_change(Change::Everything);
                }
                let seen = *last;
                for (seq, user_id) in rows.into_iter().filter(|(seq, _)| *seq > seen) {
                    *last = seq;
                    on_change(Change::Account(user_id));
                }
            }
        }
        Ok(())
    }
}
