//! The second factor: TOTP enrolment, codes, and recovery codes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::attempt::Verdict;
use super::security_log::Record as _;
use super::{
    Authenticator, Enrolment, LivePending, MAX_CODE_ATTEMPTS, TokenGrant, live_pending_in,
};
use crate::auth::authenticator;
use crate::auth::error::AuthError;
use crate::auth::qr;
use crate::auth::recovery::RecoveryCode;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::tokens::PendingClaims;
use crate::auth::totp::{self, TotpCode, TotpSecret};
use crate::store::authenticators::{self, NewAuthenticator};
use crate::store::users::UserRow;
use crate::store::{DbConnection, StoreError, pending, recovery_codes, users};

impl Authenticator {
    /// Returns the TOTP secret to enrol, creating it (the authenticator
    /// "default") on the first call.
    pub async fn setup(&self, pending: &PendingClaims) -> Result<Enrolment, AuthError> {
        let now = self.now();
        let user = self.live_pending(pending, now).await?;
        if user.two_factor_enabled {
            return Err(AuthError::TwoFactorAlreadyEnabled);
        }
        let secret = self.enrolling_secret(&user.id, now).await?;
        self.enrolment(user.username, secret).await
    }

    /// What an authenticator app needs to enrol `secret` for `username`.
    pub(super) async fn enrolment(
        &self,
        username: String,
        secret: TotpSecret,
    ) -> Result<Enrolment, AuthError> {
        let issuer = self.inner.settings.issuer.clone();
        let otpauth_uri = totp::otpauth_uri(&issuer, &username, &secret);
        let uri = otpauth_uri.clone();
        let turn = Arc::clone(&self.inner.cpu_turns)
            .acquire_owned()
            .await
            .map_err(AuthError::internal)?;
        let qr_png = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            qr::png(&uri)
        })
        .await
        .map_err(AuthError::internal)??;
        Ok(Enrolment {
            secret,
            otpauth_uri,
            qr_png,
            issuer,
            account_name: username,
        })
    }

    /// Exchanges a pending token and a current code for a session; the
    /// verification that enables two-factor also returns recovery codes.
    pub async fn verify(
        &self,
        pending: &PendingClaims,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let inner = Arc::clone(&self.inner);
        let step = move |conn: &mut DbConnection,
                         user: &UserRow,
                         client: &ClientInfo,
                         now: DateTime<Utc>| {
            let Some(authenticator_id) = inner.accept_totp(conn, user, &code, now)? else {
                return Ok(None);
            };
            // The usual sign-in of an enrolled user writes nothing more.
            if user.two_factor_enabled || !users::enable_two_factor(conn, &user.id)? {
                return Ok(Some(None));
            }
            let at = now.naive_utc();
            let (codes, code_hashes) = inner.new_recovery_codes();
            authenticators::confirm(conn, &authenticator_id, at)?;
            recovery_codes::replace_all(conn, &user.id, &code_hashes, at)?;
            client.record(conn, &user.id, EventKind::TwoFactorEnabled, at)?;
            Ok(Some(Some(codes)))
        };
        let (recovery_codes, mut grant) = self
            .pass_second_factor(
                pending,
                client,
                &["pwd", "otp"],
                AuthError::InvalidOtp,
                step,
            )
            .await?;
        grant.recovery_codes = recovery_codes;
        Ok(grant)
    }

    /// Exchanges a pending token and an unused recovery code for a session
    /// whose `amr` says so; the code is spent.
    pub async fn recover(
        &self,
        pending: &PendingClaims,
        code: RecoveryCode,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let code_hashes = self.inner.recovery.candidates(&code);
        let step = move |conn: &mut DbConnection,
                         user: &UserRow,
                         client: &ClientInfo,
                         now: DateTime<Utc>| {
            let at = now.naive_utc();
            let spent =
                user.two_factor_enabled && recovery_codes::spend(conn, &user.id, &code_hashes, at)?;
            if !spent {
                return Ok(None);
            }
            client.record(conn, &user.id, EventKind::RecoveryCodeUsed, at)?;
            Ok(Some(()))
        };
        let amr = ["pwd", "recovery_code"];
        let ((), grant) = self
            .pass_second_factor(pending, client, &amr, AuthError::InvalidRecoveryCode, step)
            .await?;
        Ok(grant)
    }

    /// The step both second factors share: in one transaction that holds
    /// the account's failure counter, `check` verifies the factor and
    /// writes what it changes (`None`: wrong, counted as a failure); then
    /// the pending token is spent and the session opened. A wrong factor
    /// answers `rejected`.
    async fn pass_second_factor<T, F>(
        &self,
        pending: &PendingClaims,
        client: ClientInfo,
        amr: &[&str],
        rejected: AuthError,
        check: F,
    ) -> Result<(T, TokenGrant), AuthError>
    where
        F: FnOnce(
                &mut DbConnection,
                &UserRow,
                &ClientInfo,
                DateTime<Utc>,
            ) -> Result<Option<T>, AuthError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let now = self.now();
        let inner = Arc::clone(&self.inner);
        let claims = pending.clone();
        let mut opening = self.open_session(&pending.sub, amr, now);
        let (verdict, opening) = self
            .write(move |conn| {
                let LivePending { user, known_device } = live_pending_in(conn, &claims, now)?;
                let attempt = inner.attempt(&user.id, &client, now, Some(&claims.jti));
                let verdict = attempt.run(conn, |conn| {
                    let Some(value) = check(conn, &user, &client, now)? else {
                        return Ok(None);
                    };
                    if !pending::consume(conn, &claims.jti, MAX_CODE_ATTEMPTS, now.naive_utc())? {
                        return Err(AuthError::InvalidToken);
                    }
                    opening.insert(conn, &client, known_device)?;
                    Ok(Some(value))
                })?;
                Ok::<_, AuthError>((verdict, opening))
            })
            .await?;
        match verdict {
            Verdict::Accepted(value) => Ok((value, opening.into_grant(self)?)),
            Verdict::Rejected => Err(rejected),
        }
    }

    /// The secret of the user's enrolment in progress: generated and
    /// stored as the authenticator "default" on the first call; if a
    /// concurrent setup stored one first, that one wins.
    async fn enrolling_secret(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TotpSecret, AuthError> {
        let secret = TotpSecret::generate();
        let sealed = self.inner.secrets.seal(secret.as_bytes(), user_id)?;
        let key_id = self.inner.secrets.key_id().to_owned();
        let user = user_id.to_owned();
        let stored = self
            .write(move |conn| {
                if let Some(enrolling) = authenticators::unconfirmed(conn, &user)? {
                    return Ok(Some(enrolling));
                }
                authenticators::insert(
                    conn,
                    &NewAuthenticator {
                        id: &Uuid::new_v4().to_string(),
                        user_id: &user,
                        name: authenticator::DEFAULT_NAME,
                        totp_secret: &sealed,
                        totp_key_id: &key_id,
                        created_at: now.naive_utc(),
                    },
                )?;
                Ok(None)
            })
            .await;
        let enrolling = match stored {
            Ok(None) => return Ok(secret),
            Ok(Some(enrolling)) => Some(enrolling),
            // A concurrent setup inserted first (PostgreSQL): take its one.
            Err(StoreError::UniqueViolation) => {
                let user = user_id.to_owned();
                self.read(move |conn| authenticators::unconfirmed(conn, &user))
                    .await?
            }
            Err(error) => return Err(error.into()),
        };
        // None: the enrolment was confirmed meanwhile.
        let enrolling = enrolling.ok_or(AuthError::TwoFactorAlreadyEnabled)?;
        self.inner.open_secret(&enrolling)
    }
}
