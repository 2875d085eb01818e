//! Access tokens of live sessions kept in memory, so that a request with
//! one it presented before need neither read the database nor check the
//! signature again (the token's bytes are the key: the very bytes already
//! verified). An entry is trusted only after the change
//! feed has been read from a start later than the request's arrival
//! ([`ChangeFeed::caught_up`]): a logout, a revocation, a password change
//! or a deletion committed by any instance before the request arrived has
//! evicted it by then. While the feed cannot be read, nothing is trusted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use chrono::{DateTime, Utc};

use super::Session;
use crate::store::change_feed::{Change, ChangeFeed};
use crate::store::{Store, StoreError};

pub(super) struct SessionCache {
    entries: Arc<Entries>,
    feed: ChangeFeed,
}

struct Entries {
    by_token: RwLock<HashMap<String, Entry>>,
    /// Bumped by every eviction: a lookup that began before one may have
    /// read what it evicted, and must not store it.
    evictions: AtomicU64,
    capacity: usize,
}

struct Entry {
    session: Arc<Session>,
    session_expires_at: DateTime<Utc>,
}

/// Where a lookup that missed stands: handed back to [`SessionCache::insert`].
pub(super) struct Miss(u64);

impl SessionCache {
    /// A cache of at most `capacity` sessions, fed by `store`'s changes.
    pub fn start(store: &Store, capacity: usize) -> Result<Self, StoreError> {
        let entries = Arc::new(Entries {
            by_token: RwLock::new(HashMap::new()),
            evictions: AtomicU64::new(0),
            capacity,
        });
        let fed: Weak<Entries> = Arc::downgrade(&entries);
        let feed = store.change_feed(Box::new(move |change| {
            if let Some(entries) = fed.upgrade() {
                entries.forget(&change);
            }
        }))?;
        Ok(Self { entries, feed })
    }

    /// The session of access token `token` if it is cached, current and
    /// live at `now`; otherwise where the miss stands (None: the cache can
    /// vouch for nothing now). Waits for the change feed (a database round
    /// trip shared by every waiting request).
    pub async fn get(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<Session>, Option<Miss>> {
        let evictions = self.entries.evictions.load(Ordering::Acquire);
        if !self.feed.caught_up().await {
            return Err(None);
        }
        let by_token = self.entries.read();
        match by_token.get(token) {
            Some(entry)
                if entry.session.claims.current_at(now.timestamp())
                    && entry.session_expires_at > now =>
            {
                crate::metrics::session_cache(true);
                Ok(Arc::clone(&entry.session))
            }
            _ => {
                crate::metrics::session_cache(false);
                Err(Some(Miss(evictions)))
            }
        }
    }

    /// Keeps what a lookup that missed read from the database, unless an
    /// eviction happened since the miss's feed read began.
    pub fn insert(
        &self,
        miss: Miss,
        token: &str,
        session: Arc<Session>,
        session_expires_at: DateTime<Utc>,
    ) {
        let mut by_token = self
            .entries
            .by_token
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Checked under the lock that evictions take too.
        if self.entries.evictions.load(Ordering::Acquire) != miss.0 {
            return;
        }
        if by_token.len() >= self.entries.capacity {
            // Rare (the capacity is sized for the live sessions): start over
            // rather than keep an eviction order.
            by_token.clear();
        }
        by_token.insert(
            token.to_owned(),
            Entry {
                session,
                session_expires_at,
            },
        );
    }
}

impl Entries {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.by_token
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, change: &Change) {
        let mut by_token = self
            .by_token
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.evictions.fetch_add(1, Ordering::AcqRel);
        match change {
            Change::Everything => by_token.clear(),
            Change::Account(user_id) => {
                by_token.retain(|_, entry| entry.session.account.id != *user_id);
            }
        }
    }
}
