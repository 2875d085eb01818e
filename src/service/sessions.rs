//! Sessions after the second factor: access checks, refresh, the user's
//! list of sessions, logout.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::security_log::Record as _;
use super::{Account, Authenticator, GrantedSession, Session, TokenGrant};
use crate::auth::error::AuthError;
use crate::auth::opaque_token::RefreshToken;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::tokens::TokenRejection;
use crate::store::sessions::{self, NewRefresh, SessionRow};

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The caller's session.
    Local,
    /// Every session of the user but the caller's.
    Others,
    /// Every session of the user.
    Global,
}

/// A live session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Its last refresh, if any.
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
    /// Whether it is the session of the request.
    pub current: bool,
}

/// What a presented refresh token turned out to be.
enum Refreshed {
    Rotated(SessionRow),
    /// Already rotated: someone replayed it; the session is now revoked.
    Reused,
    /// Unknown, expired, or of an ended session.
    Dead,
}

impl Authenticator {
    /// Resolves an access token to its live session and user.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Session>, AuthError> {
        let now = self.now();
        let cache = self.inner.session_cache.as_ref();
        let miss = match cache {
            Some(cache) => match cache.get(token, now).await {
                Ok(session) => return Ok(session),
                Err(miss) => miss,
            },
            None => None,
        };
        let claims = self
            .inner
            .tokens
            .verify_access(token, now.timestamp())
            .map_err(|rejection| match rejection {
                TokenRejection::SecondFactorMissing => AuthError::TwoFactorRequired,
                TokenRejection::Invalid => AuthError::InvalidToken,
            })?;
        let (sid, sub) = (claims.sid.clone(), claims.sub.clone());
        let (user, session_expires_at) = self
            .read(move |conn| sessions::live_user(conn, &sid, &sub, now.naive_utc()))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let session = Arc::new(Session {
            account: Account::from(&user),
            claims,
        });
        if let (Some(cache), Some(miss)) = (cache, miss) {
            cache.insert(
                miss,
                token,
                Arc::clone(&session),
                session_expires_at.and_utc(),
            );
        }
        Ok(session)
    }

    /// Rotates a refresh token: the old one dies, a new pair is issued with
    /// the session's `amr`. A rotated token presented again revokes the
    /// whole session (reuse detection).
    pub async fn refresh(
        &self,
        presented: RefreshToken,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let now = self.now();
        let refresh_ttl = self.inner.settings.refresh_ttl;
        let next = RefreshToken::generate();
        let next_hash = next.hash();
        let presented_hash = presented.hash();
        // An unknown token costs one read, never the write lock: a flood of
        // made-up tokens cannot queue the writers (SQLite has one); and it
        // takes from the client's request bucket, so it cannot tie up the
        // pool for long either.
        let lookup = presented_hash.clone();
        if self
            .read(move |conn| sessions::find_refresh(conn, &lookup))
            .await?
            .is_none()
        {
            self.take_request_token(&client, None, now).await?;
            return Err(AuthError::InvalidToken);
        }
        let outcome = self
            .write(move |conn| {
                let at = now.naive_utc();
                let Some((token, session)) = sessions::find_refresh(conn, &presented_hash)? else {
                    return Ok::<_, AuthError>((Refreshed::Dead, at));
                };
                let reused = |conn: &mut _| -> Result<_, AuthError> {
                    if sessions::revoke_by_id(conn, &session.id, at)? {
                        client.record(
                            conn,
                            &session.user_id,
                            EventKind::RefreshReuseDetected,
                            at,
                        )?;
                    }
                    Ok((Refreshed::Reused, at))
                };
                if token.rotated_at.is_some() {
                    return reused(conn);
                }
                // Checked before rotating: an expired token left unrotated
                // stays merely dead, so a client's retry of it is not
                // mistaken for reuse (which would revoke a live session).
                if session.revoked_at.is_some()
                    || session.expires_at <= at
                    || token.expires_at <= at
                {
                    return Ok((Refreshed::Dead, at));
                }
                // A concurrent refresh with the same token lands here once
                // the winner has rotated it: that is reuse as well.
                if !sessions::rotate_refresh(conn, &presented_hash, at)? {
                    return reused(conn);
                }
                sessions::touch(conn, &session.id, at)?;
                let expires_at = (now + refresh_ttl).naive_utc().min(session.expires_at);
                sessions::insert_refresh(
                    conn,
                    &NewRefresh {
                        token_hash: &next_hash,
                        session_id: &session.id,
                        expires_at,
                        created_at: at,
                    },
                )?;
                Ok((Refreshed::Rotated(session), expires_at))
            })
            .await?;
        match outcome {
            (Refreshed::Rotated(session), expires_at) => self.token_grant(
                GrantedSession {
                    id: &session.id,
                    user_id: &session.user_id,
                    amr: session.amr.split(' ').map(str::to_owned).collect(),
                    created_at: session.created_at.and_utc(),
                },
                next,
                DateTime::from_naive_utc_and_offset(expires_at, chrono::Utc),
                now,
            ),
            (Refreshed::Reused | Refreshed::Dead, _) => Err(AuthError::InvalidToken),
        }
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(&self, session: &Session) -> Result<Vec<SessionSummary>, AuthError> {
        let now = self.now().naive_utc();
        let user_id = session.claims.sub.clone();
        let rows = self
            .read(move |conn| sessions::list_live(conn, &user_id, now))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| SessionSummary {
                current: row.id == session.claims.sid,
                amr: row.amr.split(' ').map(str::to_owned).collect(),
                id: row.id,
                created_at: row.created_at.and_utc(),
                last_used_at: row.last_used_at.map(|at| at.and_utc()),
                expires_at: row.expires_at.and_utc(),
                ip: row.ip,
                user_agent: row.user_agent,
            })
            .collect())
    }

    /// Revokes one live session of the user (the caller's own included);
    /// false when `session_id` is not one.
    pub async fn revoke_session(
        &self,
        session: &Session,
        session_id: &str,
        client: ClientInfo,
    ) -> Result<bool, AuthError> {
        let now = self.now().naive_utc();
        let (sid, sub) = (session_id.to_owned(), session.claims.sub.clone());
        self.write(move |conn| {
            if !sessions::revoke(conn, &sid, &sub, now)? {
                return Ok(false);
            }
            client.record(conn, &sub, EventKind::SessionRevoked, now)?;
            Ok(true)
        })
        .await
    }

    /// Ends the caller's session, the user's other sessions, or all of
    /// them: their access and refresh tokens are refused from now on. The
    /// log says `logout` for the caller's session and `session_revoked`
    /// when others were ended.
    pub async fn logout(
        &self,
        session: &Session,
        scope: LogoutScope,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let now = self.now().naive_utc();
        let (sid, sub) = (session.claims.sid.clone(), session.claims.sub.clone());
        self.write(move |conn| {
            if scope != LogoutScope::Local && sessions::revoke_others(conn, &sub, &sid, now)? > 0 {
                client.record(conn, &sub, EventKind::SessionRevoked, now)?;
            }
            if scope != LogoutScope::Others {
                if !sessions::revoke(conn, &sid, &sub, now)? {
                    return Err(AuthError::InvalidToken);
                }
                client.record(conn, &sub, EventKind::Logout, now)?;
            }
            Ok(())
        })
        .await
    }
}
