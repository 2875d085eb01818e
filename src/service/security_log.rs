//! Writing the security log: one row per event, in the transaction of the
//! step that caused it.

use chrono::NaiveDateTime;

use crate::auth::security_log::{ClientInfo, EventKind};
use crate::store::{DbConnection, StoreError, security_log};

/// Records an event caused by this client.
pub(super) trait Record {
    fn record(
        &self,
        conn: &mut DbConnection,
        user_id: &str,
        event: EventKind,
        at: NaiveDateTime,
    ) -> Result<(), StoreError>;
}

impl Record for ClientInfo {
    fn record(
        &self,
        conn: &mut DbConnection,
        user_id: &str,
        event: EventKind,
        at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        crate::metrics::record_security_event(event.as_str());
        security_log::insert(
            conn,
            &security_log::NewEvent {
                user_id,
                event_type: event.as_str(),
                ip: self.ip.map(|ip| ip.to_string()).as_deref(),
                user_agent: self.user_agent.as_deref(),
                created_at: at,
            },
        )
    }
}
