//! The second factor: TOTP enrolment, codes, and recovery codes.

use super::{Authenticator, Enrolment, MAX_CODE_ATTEMPTS, TokenGrant, throttling};
use crate::auth::audit::{ClientInfo, SecurityEvent};
use crate::auth::error::AuthError;
use crate::auth::qr;
use crate::auth::recovery::RecoveryCode;
use crate::auth::tokens::PendingClaims;
use crate::auth::totp::{self, TotpCode, TotpSecret};
use crate::store::{pending, recovery, users};

impl Authenticator {
    /// Returns the TOTP secret to enrol, creating it on the first call.
    pub async fn setup(&self, pending: &PendingClaims) -> Result<Enrolment, AuthError> {
        let now = self.now();
        let (_, user) = self.live_pending(pending, now).await?;
        if user.two_factor_enabled {
            return Err(AuthError::TwoFactorAlreadyEnabled);
        }
        let secret = match self.open_secret(&user)? {
            Some(secret) => secret,
            None => self.create_secret(&user.id).await?,
        };
        let issuer = self.inner.settings.issuer.clone();
        let otpauth_uri = totp::otpauth_uri(&issuer, &user.username, &secret);
        let uri = otpauth_uri.clone();
        let qr_png = tokio::task::spawn_blocking(move || qr::png(&uri))
            .await
            .map_err(AuthError::internal)??;
        Ok(Enrolment {
            secret,
            otpauth_uri,
            qr_png,
            issuer,
            account_name: user.username,
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
        let now = self.now();
        let (_, user) = self.live_pending(pending, now).await?;
        let secret = self
            .open_secret(&user)?
            .ok_or(AuthError::TwoFactorSetupRequired)?;
        let throttle_key = self.reserve_second_factor(&user.id, now, &client).await?;
        let Some(step) = secret.matching_step(&code, now.timestamp(), user.totp_last_step) else {
            return self
                .reject_second_factor(pending, client, AuthError::InvalidOtp)
                .await;
        };
        let opening = self.open_session(&user.id, &["pwd", "otp"], now);
        let (codes, code_hashes) = self.new_recovery_codes();
        let jti = pending.jti.clone();
        let event_client = client.clone();
        let outcome = self
            .inner
            .store
            .transaction(move |conn| {
                let at = now.naive_utc();
                if !pending::consume(conn, &jti, MAX_CODE_ATTEMPTS, at)? {
                    return Err(AuthError::InvalidToken);
                }
                // The replay check: the step must be newer than any accepted.
                if !users::advance_totp_step(conn, &opening.user_id, step)? {
                    return Err(AuthError::InvalidOtp);
                }
                throttling::release(conn, &throttle_key)?;
                let first_enable = users::enable_two_factor(conn, &opening.user_id)?;
                if first_enable {
                    recovery::replace_all(conn, &opening.user_id, &code_hashes, at)?;
                    event_client.record(
                        conn,
                        &opening.user_id,
                        SecurityEvent::TwoFactorEnabled,
                        at,
                    )?;
                }
                opening.insert(conn, &event_client)?;
                Ok((opening, first_enable))
            })
            .await;
        match outcome {
            Ok((opening, first_enable)) => {
                let mut grant = opening.into_grant(self)?;
                grant.recovery_codes = first_enable.then_some(codes);
                Ok(grant)
            }
            Err(AuthError::InvalidOtp) => {
                self.reject_second_factor(pending, client, AuthError::InvalidOtp)
                    .await
            }
            Err(other) => Err(other),
        }
    }

    /// Exchanges a pending token and an unused recovery code for a session
    /// whose `amr` says so; the code is spent.
    pub async fn recover(
        &self,
        pending: &PendingClaims,
        code: RecoveryCode,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let now = self.now();
        let (_, user) = self.live_pending(pending, now).await?;
        let throttle_key = self.reserve_second_factor(&user.id, now, &client).await?;
        if !user.two_factor_enabled {
            return self
                .reject_second_factor(pending, client, AuthError::InvalidRecoveryCode)
                .await;
        }
        let code_hashes = self.inner.recovery.candidates(&code);
        let opening = self.open_session(&user.id, &["pwd", "recovery_code"], now);
        let jti = pending.jti.clone();
        let event_client = client.clone();
        let outcome = self
            .inner
            .store
            .transaction(move |conn| {
                let at = now.naive_utc();
                if !recovery::spend(conn, &opening.user_id, &code_hashes, at)? {
                    return Err(AuthError::InvalidRecoveryCode);
                }
                if !pending::consume(conn, &jti, MAX_CODE_ATTEMPTS, at)? {
                    return Err(AuthError::InvalidToken);
                }
                throttling::release(conn, &throttle_key)?;
                event_client.record(conn, &opening.user_id, SecurityEvent::RecoveryCodeUsed, at)?;
                opening.insert(conn, &event_client)?;
                Ok(opening)
            })
            .await;
        match outcome {
            Ok(opening) => opening.into_grant(self),
            Err(AuthError::InvalidRecoveryCode) => {
                self.reject_second_factor(pending, client, AuthError::InvalidRecoveryCode)
                    .await
            }
            Err(other) => Err(other),
        }
    }

    /// Counts a wrong (or replayed) code against the pending token, then
    /// fails with `error`.
    async fn reject_second_factor<T>(
        &self,
        pending: &PendingClaims,
        client: ClientInfo,
        error: AuthError,
    ) -> Result<T, AuthError> {
        let now = self.now().naive_utc();
        let (jti, user_id) = (pending.jti.clone(), pending.sub.clone());
        self.inner
            .store
            .transaction(move |conn| {
                if pending::record_failure(conn, &jti, MAX_CODE_ATTEMPTS)?.is_none() {
                    return Err(AuthError::InvalidToken);
                }
                client.record(conn, &user_id, SecurityEvent::OtpFailed, now)?;
                Ok(())
            })
            .await?;
        Err(error)
    }

    /// Generates and stores a secret; if a concurrent setup stored one
    /// first, that one wins and is returned.
    async fn create_secret(&self, user_id: &str) -> Result<TotpSecret, AuthError> {
        let secret = TotpSecret::generate();
        let sealed = self.inner.secrets.seal(secret.as_bytes(), user_id)?;
        let key_id = self.inner.secrets.key_id().to_owned();
        let id = user_id.to_owned();
        let stored_user = self
            .inner
            .store
            .transaction(move |conn| {
                if users::store_secret_if_absent(conn, &id, &sealed, &key_id)? {
                    Ok(None)
                } else {
                    users::find_by_id(conn, &id)
                }
            })
            .await?;
        match stored_user {
            None => Ok(secret),
            Some(user) if user.two_factor_enabled => Err(AuthError::TwoFactorAlreadyEnabled),
            Some(user) => self
                .open_secret(&user)?
                .ok_or_else(|| AuthError::internal("TOTP secret vanished during setup")),
        }
    }
}
