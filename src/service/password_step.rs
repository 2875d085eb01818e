//! The first factor: registration and password login.

use uuid::Uuid;

use super::security_log::Record as _;
use super::{
    Account, Authenticator, NextStep, PendingGrant, Registration, insert_pending, throttle,
};
use crate::auth::error::AuthError;
use crate::auth::password::Password;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::throttle::BucketPolicy;
use crate::auth::tokens::PendingClaims;
use crate::auth::username::{self, Username};
use crate::store::StoreError;
use crate::store::users::{self, NewUser};

impl Authenticator {
    /// Creates the account and hands out its first pending token.
    pub async fn register(
        &self,
        username: Username,
        password: Password,
        client: ClientInfo,
    ) -> Result<Registration, AuthError> {
        let key = username.key().to_owned();
        let ip_limit = self.ip_limit(&client);
        let now = self.now();
        // Refuse a taken name before paying for bcrypt; the unique index
        // below still settles races.
        let taken = self
            .write(move |conn| {
                if let Some((ip_key, policy)) = ip_limit {
                    throttle::take_token(conn, &ip_key, &policy, now.timestamp() as f64)?;
                }
                Ok::<_, AuthError>(users::key_exists(conn, &key)?)
            })
            .await?;
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
            insert_pending(conn, &claims)?;
            client.record(conn, &user_id, EventKind::Registered, at)?;
            Ok(())
        })
        .await?;
        Ok(Registration { account, grant })
    }

    /// Checks the password. An unknown name costs one bcrypt verification,
    /// like a wrong password, and gets the same error; it is throttled
    /// exactly like a real one, so a 429 tells nothing either.
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        client: ClientInfo,
    ) -> Result<PendingGrant, AuthError> {
        let key = username::lookup_key(username);
        let limits = self.inner.settings.limits;
        let ip = client.ip.clone().unwrap_or_default();
        let per_client = throttle::key("login-client", &[&key, &ip]);
        let per_username = throttle::key("login-username", &[&key]);
        let now = self.now();
        if let Some((ip_key, policy)) = self.ip_limit(&client) {
            self.write(move |conn| {
                throttle::take_token(conn, &ip_key, &policy, now.timestamp() as f64)
            })
            .await?;
        }
        // Attempts are counted before bcrypt says whether they failed, so a
        // parallel burst stops at the limit; taking the hashing turn first
        // keeps in flight (and so counted ahead) at most the pool's threads
        // plus one, so an honest client's parallel logins do not lock it out.
        let turn = self.inner.hasher.turn().await?;
        let (counters, event_client) = ((per_client.clone(), per_username.clone()), client.clone());
        let user = self
            .write(move |conn| {
                let at = now.timestamp();
                let locked = throttle::reserve(conn, &counters.0, &limits.login_per_client, at)?
                    | throttle::reserve(conn, &counters.1, &limits.login_per_username, at)?;
                let user = users::find_by_key(conn, &key)?;
                if let (true, Some(user)) = (locked, &user) {
                    event_client.record(conn, &user.id, EventKind::LockedOut, now.naive_utc())?;
                }
                Ok::<_, AuthError>(user)
            })
            .await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_ok = turn.verify(password, stored_hash).await?;
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        if !password_ok {
            let user_id = user.id.clone();
            self.write(move |conn| {
                client.record(conn, &user_id, EventKind::LoginFailed, now.naive_utc())
            })
            .await?;
            return Err(AuthError::InvalidCredentials);
        }
        let next_step = if user.two_factor_enabled {
            NextStep::VerifyTwoFactor
        } else {
            NextStep::SetupTwoFactor
        };
        let (claims, grant) = self.pending_grant(&user.id, now, next_step)?;
        self.write(move |conn| {
            throttle::release(conn, &per_client)?;
            throttle::release(conn, &per_username)?;
            insert_pending(conn, &claims)
        })
        .await?;
        Ok(grant)
    }

    /// The client's request bucket, when there is a per-IP limit and an IP.
    /// Loopback clients are not limited: behind a reverse proxy on the
    /// same host that is not listed in `OTPGATE_TRUSTED_PROXIES`, every user
    /// would otherwise share one bucket, and the address names no client.
    /// (Per-account and per-username limits still apply to them.)
    fn ip_limit(&self, client: &ClientInfo) -> Option<(String, BucketPolicy)> {
        let policy = self.inner.settings.limits.per_ip?;
        let ip = client.ip.as_deref()?;
        let loopback = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|addr| addr.to_canonical().is_loopback());
        (!loopback).then(|| (throttle::key("ip", &[ip]), policy))
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
