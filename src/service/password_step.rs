//! The first factor: registration and password login.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::security_log::Record as _;
use super::{
    Account, Authenticator, NextStep, PendingGrant, Registration, insert_pending, throttle,
};
use crate::auth::error::{AuthError, error_chain};
use crate::auth::opaque_token::DeviceToken;
use crate::auth::password::Password;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::tokens::PendingClaims;
use crate::auth::username::{self, Username};
use crate::store::users::{self, NewUser};
use crate::store::{StoreError, devices};

impl Authenticator {
    /// Creates the account and hands out its first pending token.
    pub async fn register(
        &self,
        username: Username,
        password: Password,
        client: ClientInfo,
    ) -> Result<Registration, AuthError> {
        let key = username.key().to_owned();
        let now = self.now();
        self.take_request_token(&client, None, now).await?;
        // Refuse a taken name before paying for bcrypt; the unique index
        // below still settles races.
        let taken = self.read(move |conn| users::key_exists(conn, &key)).await?;
        if taken {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.inner.hasher.hash(password).await?;
        let user_id = Uuid::new_v4().to_string();
        let (claims, grant) = self.pending_grant(&user_id, now, NextStep::SetupTwoFactor)?;
        let account = Account {
            id: user_id.clone(),
            username: username.as_str().to_owned(),
            two_factor_enabled: false,
            created_at: now,
        };
        self.write(move |conn| {
            let at = now.naive_utc();
            let new_user = NewUser {
                id: &user_id,
                username: username.as_str(),
                username_key: username.key(),
                password_hash: &password_hash,
                created_at: at,
            };
            match users::insert(conn, &new_user) {
                Err(StoreError::UniqueViolation) => return Err(AuthError::UsernameTaken),
                other => other?,
            }
            insert_pending(conn, &claims, false)?;
            client.record(conn, &user_id, EventKind::Registered, at)?;
            Ok(())
        })
        .await?;
        Ok(Registration { account, grant })
    }

    /// Checks the password. An unknown name costs one bcrypt verification,
    /// like a wrong password, gets the same error after the same database
    /// work, and is throttled exactly like a real one, so a 429 tells
    /// nothing either.
    ///
    /// A device token that is live for this username puts the attempt on
    /// that device's own streak only: the per-IP bucket, the (username,
    /// address) streak and the per-username cap, which an attacker can
    /// spend, do not apply. Any other device token is ignored as if absent.
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        device: Option<DeviceToken>,
        client: ClientInfo,
    ) -> Result<PendingGrant, AuthError> {
        let key = username::lookup_key(username);
        let limits = self.inner.settings.limits;
        let now = self.now();
        let known_device = match device {
            Some(device) => self.live_device(device, &key, now).await?,
            None => None,
        };
        let counters = match &known_device {
            Some(device_hash) => {
                // The device's own request bucket: its owner's correct
                // logins must not become a free bcrypt flood either.
                self.take_request_token(&client, Some(device_hash), now)
                    .await?;
                vec![(
                    self.throttle_key("login-device", &[device_hash]),
                    limits.login_per_client,
                )]
            }
            None => {
                self.take_request_token(&client, None, now).await?;
                vec![
                    (
                        self.throttle_key("login-client", &[&key, &client.throttle_unit()]),
                        limits.login_per_client,
                    ),
                    (
                        self.throttle_key("login-username", &[&key]),
                        limits.login_per_username,
                    ),
                ]
            }
        };
        // Attempts are counted before bcrypt says whether they failed, so a
        // parallel burst stops at the limit; taking the hashing turn first
        // keeps in flight (and so counted ahead) at most the pool's threads
        // plus one, so an honest client's parallel logins do not lock it out.
        let turn = self.inner.hasher.turn().await?;
        let reserved = counters.clone();
        let (user, locked) = self
            .write(move |conn| {
                let at = now.timestamp();
                let mut locked = false;
                for (counter, policy) in &reserved {
                    locked |= throttle::reserve(conn, counter, policy, at)?;
                }
                Ok::<_, AuthError>((users::find_by_key(conn, &key)?, locked))
            })
            .await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_ok = turn.verify(password, stored_hash).await?;
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        if !password_ok {
            self.log_failed_login_later(user.id, client, locked, now);
            return Err(AuthError::InvalidCredentials);
        }
        let next_step = if user.two_factor_enabled {
            NextStep::VerifyTwoFactor
        } else {
            NextStep::SetupTwoFactor
        };
        let (claims, grant) = self.pending_grant(&user.id, now, next_step)?;
        let known_device = known_device.is_some();
        self.write(move |conn| {
            for (counter, _) in &counters {
                throttle::release(conn, counter)?;
            }
            insert_pending(conn, &claims, known_device)
        })
        .await?;
        Ok(grant)
    }

    /// Logs a wrong password for a real user once the answer has gone: an
    /// unknown name has nothing to log, and the answer for a real one must
    /// not take longer (the work before bcrypt is the same for both).
    fn log_failed_login_later(
        &self,
        user_id: String,
        client: ClientInfo,
        locked: bool,
        now: DateTime<Utc>,
    ) {
        let service = self.clone();
        actix_web::rt::spawn(async move {
            let at = now.naive_utc();
            let logged = service
                .write(move |conn| {
                    client.record(conn, &user_id, EventKind::LoginFailed, at)?;
                    if locked {
                        client.record(conn, &user_id, EventKind::LockedOut, at)?;
                    }
                    Ok::<_, AuthError>(())
                })
                .await;
            if let Err(error) = logged {
                tracing::warn!(error = %error_chain(&error), "could not log a failed login");
            }
        });
    }

    /// The hash of the device token if it is live for `username_key`.
    async fn live_device(
        &self,
        device: DeviceToken,
        username_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, AuthError> {
        let (hash, key) = (device.hash(), username_key.to_owned());
        let live = self
            .read(move |conn| devices::is_live_for(conn, &hash, &key, now.naive_utc()))
            .await?;
        Ok(live.then(|| device.hash()))
    }

    /// Takes a token from the client's request bucket (login, registration
    /// and authenticated password checks), when there is a per-address
    /// limit: the bucket of its address, or of its known device (whose
    /// logins the address bucket, which an attacker can empty, must not
    /// refuse). Local tools (a loopback peer that is no listed proxy) are
    /// exempt: behind an unlisted proxy on the same host every user would
    /// otherwise share one bucket. A listed proxy is never exempt.
    pub(super) async fn take_request_token(
        &self,
        client: &ClientInfo,
        known_device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let Some(policy) = self.inner.settings.limits.per_ip else {
            return Ok(());
        };
        if client.local {
            return Ok(());
        }
        let bucket = match known_device {
            Some(device_hash) => self.throttle_key("device", &[device_hash]),
            None => self.throttle_key("ip", &[&client.throttle_unit()]),
        };
        self.write(move |conn| throttle::take_token(conn, &bucket, &policy, now.timestamp() as f64))
            .await
    }

    /// Checks a pending token's signature, kind and lifetime (not yet
    /// whether it was spent: each step does that in its own query).
    pub fn check_pending_token(&self, token: &str) -> Result<PendingClaims, AuthError> {
        self.inner
            .tokens
            .verify_pending(token, self.now().timestamp())
            .map_err(|_| AuthError::InvalidToken)
    }
}
