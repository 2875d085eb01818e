//! Sessions after the second factor: access checks, refresh, logout.

use chrono::DateTime;

use super::security_log::Record as _;
use super::{Account, Authenticator, GrantedSession, Session, TokenGrant};
use crate::auth::error::AuthError;
use crate::auth::opaque_token::RefreshToken;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::tokens::TokenRejection;
use crate::store::sessions::{self, NewRefresh, SessionRow};

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
    pub async fn authenticate(&self, token: &str) -> Result<Session, AuthError> {
        let now = self.now();
        let claims = self
            .inner
            .tokens
            .verify_access(token, now.timestamp())
            .map_err(|rejection| match rejection {
                TokenRejection::SecondFactorMissing => AuthError::TwoFactorRequired,
                TokenRejection::Invalid => AuthError::InvalidToken,
            })?;
        let (sid, sub) = (claims.sid.clone(), claims.sub.clone());
        let user = self
            .read(move |conn| sessions::live_user(conn, &sid, &sub, now.naive_utc()))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        Ok(Session {
            account: Account::from(&user),
            claims,
        })
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
        // made-up tokens cannot queue the writers (SQLite has one).
        let lookup = presented_hash.clone();
        if self
            .read(move |conn| sessions::find_refresh(conn, &lookup))
            .await?
            .is_none()
        {
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

    /// Ends the session: its access and refresh tokens are refused from now on.
    pub async fn logout(&self, session: &Session, client: ClientInfo) -> Result<(), AuthError> {
        let now = self.now().naive_utc();
        let (sid, sub) = (session.claims.sid.clone(), session.claims.sub.clone());
        self.write(move |conn| {
            if !sessions::revoke(conn, &sid, &sub, now)? {
                return Err(AuthError::InvalidToken);
            }
            client.record(conn, &sub, EventKind::Logout, now)?;
            Ok(())
        })
        .await
    }
}
