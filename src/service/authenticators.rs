//! Several authenticators per user: listing, adding (a code of an existing
//! one, so that a stolen access token alone cannot enrol the thief's
//! phone), confirming with a code of the new one, and removing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::attempt::Verdict;
use super::security_log::Record as _;
use super::{Authenticator, Enrolment, Session};
use crate::auth::authenticator::{AuthenticatorName, MAX_PER_USER};
use crate::auth::error::AuthError;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::totp::{TotpCode, TotpSecret};
use crate::store::authenticators::{self, AuthenticatorRow, NewAuthenticator};
use crate::store::recovery_codes;

/// An authenticator as its owner sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorInfo {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&AuthenticatorRow> for AuthenticatorInfo {
    fn from(row: &AuthenticatorRow) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            created_at: row.created_at.and_utc(),
            last_used_at: row.last_used_at.map(|at| at.and_utc()),
        }
    }
}

/// The user's confirmed authenticators, oldest first, and how many
/// recovery codes they have left.
#[derive(Debug)]
pub struct AuthenticatorList {
    pub authenticators: Vec<AuthenticatorInfo>,
    pub recovery_codes_left: i64,
}

/// A new, unconfirmed authenticator and what an app needs to enrol it.
#[derive(Debug)]
pub struct AddedAuthenticator {
    pub authenticator: AuthenticatorInfo,
    pub enrolment: Enrolment,
}

impl Authenticator {
    pub async fn list_authenticators(
        &self,
        session: &Session,
    ) -> Result<AuthenticatorList, AuthError> {
        let user_id = session.claims.sub.clone();
        self.read(move |conn| {
            let rows = authenticators::confirmed(conn, &user_id)?;
            Ok(AuthenticatorList {
                authenticators: rows.iter().map(AuthenticatorInfo::from).collect(),
                recovery_codes_left: recovery_codes::count_unused(conn, &user_id)?,
            })
        })
        .await
    }

    /// Starts enrolling another authenticator, given a current code of an
    /// existing one. It replaces any earlier one still unconfirmed.
    pub async fn add_authenticator(
        &self,
        session: &Session,
        name: AuthenticatorName,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<AddedAuthenticator, AuthError> {
        let secret = TotpSecret::generate();
        let user_id = session.claims.sub.clone();
        let sealed = self.inner.secrets.seal(secret.as_bytes(), &user_id)?;
        let key_id = self.inner.secrets.key_id().to_owned();
        let id = Uuid::new_v4().to_string();
        let new_id = id.clone();
        let new_name = name.clone();
        let created_at = self
            .with_fresh_code(session, code, client, move |conn, at| {
                let confirmed = authenticators::confirmed(conn, &user_id)?;
                if confirmed.len() as i64 >= MAX_PER_USER {
                    return Err(AuthError::TooManyAuthenticators);
                }
                if confirmed.iter().any(|row| row.name == new_name.as_str()) {
                    return Err(AuthError::AuthenticatorNameTaken);
                }
                authenticators::delete_unconfirmed(conn, &user_id)?;
                authenticators::insert(
                    conn,
                    &NewAuthenticator {
                        id: &new_id,
                        user_id: &user_id,
                        name: new_name.as_str(),
                        totp_secret: &sealed,
                        totp_key_id: &key_id,
                        created_at: at,
                    },
                )?;
                Ok(at)
            })
            .await?;
        let enrolment = self
            .enrolment(session.account.username.clone(), secret)
            .await?;
        Ok(AddedAuthenticator {
            authenticator: AuthenticatorInfo {
                id,
                name: name.as_str().to_owned(),
                created_at: created_at.and_utc(),
                last_used_at: None,
            },
            enrolment,
        })
    }

    /// Confirms the authenticator being added with a code of its own. An
    /// unknown id, another user's, or one unconfirmed for longer than a
    /// pending token lives, is not found.
    pub async fn confirm_authenticator(
        &self,
        session: &Session,
        id: String,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<AuthenticatorInfo, AuthError> {
        let now = self.now();
        let expired_before = (now - self.inner.settings.pending_ttl).naive_utc();
        let inner = Arc::clone(&self.inner);
        let user_id = session.claims.sub.clone();
        let verdict = self
            .write(move |conn| {
                let attempt = inner.attempt(&user_id, &client, now, None);
                attempt.run(conn, |conn| {
                    // Read under the account's lock: a concurrent add may
                    // have replaced it.
                    let enrolling = authenticators::unconfirmed(conn, &user_id)?
                        .filter(|row| row.id == id && row.created_at > expired_before)
                        .ok_or(AuthError::NotFound)?;
                    let candidates = std::slice::from_ref(&enrolling);
                    if inner
                        .accept_code_of(conn, candidates, &code, now)?
                        .is_none()
                    {
                        return Ok(None);
                    }
                    let at = now.naive_utc();
                    authenticators::confirm(conn, &enrolling.id, at)?;
                    client.record(conn, &user_id, EventKind::AuthenticatorAdded, at)?;
                    Ok(Some(AuthenticatorInfo {
                        last_used_at: Some(now),
                        ..AuthenticatorInfo::from(&enrolling)
                    }))
                })
            })
            .await?;
        match verdict {
            Verdict::Accepted(info) => Ok(info),
            Verdict::Rejected => Err(AuthError::InvalidOtp),
        }
    }

    /// Removes a confirmed authenticator, given a current code of any; the
    /// last one stays (two-factor is turned off with `/2fa/disable`).
    pub async fn remove_authenticator(
        &self,
        session: &Session,
        id: String,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let user_id = session.claims.sub.clone();
        let event_client = client.clone();
        self.with_fresh_code(session, code, client, move |conn, at| {
            let confirmed = authenticators::confirmed(conn, &user_id)?;
            if !confirmed.iter().any(|row| row.id == id) {
                return Err(AuthError::NotFound);
            }
            if confirmed.len() == 1 {
                return Err(AuthError::LastAuthenticator);
            }
            authenticators::delete(conn, &user_id, &id)?;
            event_client.record(conn, &user_id, EventKind::AuthenticatorRemoved, at)?;
            Ok(())
        })
        .await
    }
}
