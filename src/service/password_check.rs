//! Password checks on authenticated endpoints (`/2fa/disable`, and every
//! later one that asks for the password again). A stolen access token must
//! not turn them into a password oracle, nor let one user fill the bcrypt
//! pool: each runs only after the per-address bucket, the session's own
//! failure streak and the account's second-factor lockout allow it, before
//! bcrypt, with at most one check in flight per user on any instance.

use super::security_log::Record as _;
use super::{Authenticator, Session, throttle};
use crate::auth::error::AuthError;
use crate::auth::password::Password;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::store::throttle as store;
use crate::store::users;

/// How long a claim on the user's one check in flight lasts if its holder
/// dies before releasing it (a bcrypt check takes well under a second).
const CLAIM_SECS: i64 = 30;

impl Authenticator {
    /// Checks the signed-in user's password. Refused with 429, whatever
    /// the password, while the session's streak or the account's second
    /// factor is locked (so the answer never tells which of password and
    /// code was wrong), or while another check of the user is in flight.
    /// A wrong password counts on the session's streak and toward the
    /// username's hourly cap, which does not refuse these checks: the
    /// caller has passed a second factor, and an outsider who spends the
    /// cap must not block the owner.
    pub(super) async fn check_password_again(
        &self,
        session: &Session,
        password: Password,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let now = self.now();
        self.take_request_token(client, None, now).await?;
        let limits = self.inner.settings.limits;
        let user_id = session.claims.sub.clone();
        let claim_key = self.throttle_key("password-check-in-flight", &[&user_id]);
        let streak_key = self.throttle_key("password-check-session", &[&session.claims.sid]);
        let second_factor_key = self.throttle_key("second-factor", &[&user_id]);
        let (claim, streak) = (claim_key.clone(), streak_key.clone());
        let claimed_until = now.timestamp() + CLAIM_SECS;
        let user = self
            .write(move |conn| {
                let at = now.timestamp();
                throttle::check(conn, &streak, &limits.login_per_client, at)?;
                throttle::check(conn, &second_factor_key, &limits.second_factor, at)?;
                if !store::claim(conn, &claim, at, claimed_until)? {
                    return Err(AuthError::TooManyAttempts {
                        retry_after_secs: 1,
                    });
                }
                users::find_by_id(conn, &user_id)?.ok_or(AuthError::InvalidToken)
            })
            .await?;
        let verified = self
            .inner
            .hasher
            .verify(password, Some(user.password_hash.clone()))
            .await;
        // Only a wrong password counts; a failed hasher counts nothing.
        let wrong = matches!(verified, Ok(false));
        let right = matches!(verified, Ok(true));
        let username_key = self.throttle_key("login-username", &[&user.username_key]);
        let client = client.clone();
        // Rows in the order the first transaction took them (streak, then
        // claim), so two checks of one session cannot deadlock.
        self.write(move |conn| {
            let at = now.timestamp();
            if wrong {
                let locked =
                    throttle::add_failure(conn, &streak_key, &limits.login_per_client, at)?;
                throttle::add_failure(conn, &username_key, &limits.login_per_username, at)?;
                client.record(conn, &user.id, EventKind::LoginFailed, now.naive_utc())?;
                if locked {
                    client.record(conn, &user.id, EventKind::LockedOut, now.naive_utc())?;
                }
            } else if right {
                throttle::release(conn, &streak_key)?;
            }
            store::release_claim(conn, &claim_key, claimed_until)
        })
        .await?;
        match verified? {
            true => Ok(()),
            false => Err(AuthError::InvalidCredentials),
        }
    }
}
