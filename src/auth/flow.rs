//! The two-factor flow: register → password → (setup) → code → session.
//! Each step decides in the domain and then writes its outcome in one
//! transaction, so a failed request leaves nothing half-done.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::audit::{ClientInfo, SecurityEvent};
use super::clock::Clock;
use super::error::AuthError;
use super::password::{Password, PasswordHasher};
use super::qr;
use super::secret_box::SecretBox;
use super::tokens::{
    ACCESS_AUDIENCE, AccessClaims, PENDING_AUDIENCE, PendingClaims, TokenKeys, TokenRejection,
};
use super::totp::{self, TotpCode, TotpSecret};
use super::username::{self, Username};
use crate::store::pending::{NewPending, PendingRow};
use crate::store::sessions::NewSession;
use crate::store::users::{NewUser, UserRow};
use crate::store::{DbConnection, Store, pending, sessions, users};

/// Wrong codes a pending token survives (the contract's limit).
pub const MAX_CODE_ATTEMPTS: i32 = 5;

#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// Shown in the authenticator app and used as the JWT `iss`.
    pub issuer: String,
    pub pending_ttl: Duration,
    pub access_ttl: Duration,
    /// Absolute lifetime of a session.
    pub session_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    SetupTwoFactor,
    VerifyTwoFactor,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub two_factor_enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRow> for Account {
    fn from(row: &UserRow) -> Self {
        Self {
            id: row.id.clone(),
            username: row.username.clone(),
            two_factor_enabled: row.two_factor_enabled,
            created_at: row.created_at.and_utc(),
        }
    }
}

#[derive(Debug)]
pub struct PendingGrant {
    pub token: String,
    pub expires_in: i64,
    pub next_step: NextStep,
}

#[derive(Debug)]
pub struct Registration {
    pub account: Account,
    pub grant: PendingGrant,
}

#[derive(Debug)]
pub struct Enrolment {
    pub secret: TotpSecret,
    pub otpauth_uri: String,
    pub qr_png: Vec<u8>,
    pub issuer: String,
    pub account_name: String,
}

#[derive(Debug)]
pub struct AccessGrant {
    pub access_token: String,
    pub expires_in: i64,
}

/// A request made with a live access token.
#[derive(Debug, Clone)]
pub struct Session {
    pub claims: AccessClaims,
    pub account: Account,
}

#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hasher: PasswordHasher,
    tokens: TokenKeys,
    secrets: SecretBox,
    clock: Arc<dyn Clock>,
    settings: FlowSettings,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        tokens: TokenKeys,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        settings: FlowSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                hasher,
                tokens,
                secrets,
                clock,
                settings,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Microsecond precision: what both databases store.
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now().trunc_subsecs(6)
    }

    /// Creates the account and hands out its first pending token.
    pub async fn register(
        &self,
        username: Username,
        password: Password,
        client: ClientInfo,
    ) -> Result<Registration, AuthError> {
        let key = username.key().to_owned();
        // Refuse a taken name before paying for bcrypt; the unique index
        // below still settles races.
        if self.inner.store.read(move |conn| users::key_exists(conn, &key)).await? {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.inner.hasher.hash(password).await?;
        let now = self.now();
        let user_id = Uuid::new_v4().to_string();
        let (claims, grant) = self.pending_grant(&user_id, now, NextStep::SetupTwoFactor)?;
        let account = Account {
            id: user_id.clone(),
            username: username.as_str().to_owned(),
            two_factor_enabled: false,
            created_at: now,
        };
        self.inner
            .store
            .transaction(move |conn| {
                let at = now.naive_utc();
                let inserted = users::insert(
                    conn,
                    &NewUser {
                        id: &user_id,
                        username: username.as_str(),
                        username_key: username.key(),
                        password_hash: &password_hash,
                        created_at: at,
                    },
                );
                match inserted {
                    Err(crate::store::StoreError::UniqueViolation) => {
                        return Err(AuthError::UsernameTaken);
                    }
                    other => other?,
                }
                insert_pending(conn, &claims)?;
                client.record(conn, &user_id, SecurityEvent::Registered, at)?;
                Ok(())
            })
            .await?;
        Ok(Registration { account, grant })
    }

    /// Checks the password. An unknown name costs one bcrypt verification,
    /// like a wrong password, and gets the same error.
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        client: ClientInfo,
    ) -> Result<PendingGrant, AuthError> {
        let key = username::lookup_key(username);
        let user = self
            .inner
            .store
            .read(move |conn| users::find_by_key(conn, &key))
            .await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_ok = self.inner.hasher.verify(password, stored_hash).await?;
        let now = self.now();
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        if !password_ok {
            let user_id = user.id.clone();
            self.inner
                .store
                .transaction(move |conn| {
                    client.record(conn, &user_id, SecurityEvent::LoginFailed, now.naive_utc())
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
        self.inner
            .store
            .transaction(move |conn| insert_pending(conn, &claims))
            .await?;
        Ok(grant)
    }

    /// Checks a pending token's signature, kind and lifetime (not yet
    /// whether it was spent: each step does that in its own query).
    pub fn check_pending_token(&self, token: &str) -> Result<PendingClaims, AuthError> {
        self.inner
            .tokens
            .verify_pending(token, self.now().timestamp())
            .map_err(|_| AuthError::InvalidToken)
    }

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

    /// Exchanges a pending token and a current code for a session.
    pub async fn verify(
        &self,
        pending: &PendingClaims,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<AccessGrant, AuthError> {
        let now = self.now();
        let (_, user) = self.live_pending(pending, now).await?;
        let secret = self
            .open_secret(&user)?
            .ok_or(AuthError::TwoFactorSetupRequired)?;
        let Some(step) = secret.matching_step(&code, now.timestamp(), user.totp_last_step) else {
            return self.reject_code(pending, client).await;
        };
        let session_id = Uuid::new_v4().to_string();
        let amr = ["pwd", "otp"];
        let jti = pending.jti.clone();
        let user_id = user.id.clone();
        let session_expires = now + self.inner.settings.session_ttl;
        let event_client = client.clone();
        let sid = session_id.clone();
        let outcome = self
            .inner
            .store
            .transaction(move |conn| {
                let at = now.naive_utc();
                if !pending::consume(conn, &jti, MAX_CODE_ATTEMPTS, at)? {
                    return Err(AuthError::InvalidToken);
                }
                // The replay check: the step must be newer than any accepted.
                if !users::advance_totp_step(conn, &user_id, step)? {
                    return Err(AuthError::InvalidOtp);
                }
                if users::enable_two_factor(conn, &user_id)? {
                    event_client.record(conn, &user_id, SecurityEvent::TwoFactorEnabled, at)?;
                }
                sessions::insert(
                    conn,
                    &NewSession {
                        id: &sid,
                        user_id: &user_id,
                        amr: &amr.join(" "),
                        created_at: at,
                        expires_at: session_expires.naive_utc(),
                    },
                )?;
                event_client.record(conn, &user_id, SecurityEvent::LoginSucceeded, at)?;
                Ok(())
            })
            .await;
        match outcome {
            Ok(()) => self.access_grant(&user.id, &session_id, &amr, now),
            Err(AuthError::InvalidOtp) => self.reject_code(pending, client).await,
            Err(other) => Err(other),
        }
    }

    /// Resolves an access token to its live session and user.
    pub async fn authenticate(&self, token: &str) -> Result<Session, AuthError> {
        let claims = self
            .inner
            .tokens
            .verify_access(token, self.now().timestamp())
            .map_err(|rejection| match rejection {
                TokenRejection::SecondFactorMissing => AuthError::TwoFactorRequired,
                TokenRejection::Invalid => AuthError::InvalidToken,
            })?;
        let now = self.now().naive_utc();
        let (sid, sub) = (claims.sid.clone(), claims.sub.clone());
        let user = self
            .inner
            .store
            .read(move |conn| sessions::live_user(conn, &sid, &sub, now))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        Ok(Session {
            account: Account::from(&user),
            claims,
        })
    }

    /// Ends the session: its access token is refused from now on.
    pub async fn logout(&self, session: &Session, client: ClientInfo) -> Result<(), AuthError> {
        let now = self.now().naive_utc();
        let (sid, sub) = (session.claims.sid.clone(), session.claims.sub.clone());
        self.inner
            .store
            .transaction(move |conn| {
                if !sessions::revoke(conn, &sid, &sub, now)? {
                    return Err(AuthError::InvalidToken);
                }
                client.record(conn, &sub, SecurityEvent::Logout, now)?;
                Ok(())
            })
            .await
    }

    /// The pending token's row and user, if the token is still usable.
    async fn live_pending(
        &self,
        claims: &PendingClaims,
        now: DateTime<Utc>,
    ) -> Result<(PendingRow, UserRow), AuthError> {
        let (jti, sub) = (claims.jti.clone(), claims.sub.clone());
        let (row, user) = self
            .inner
            .store
            .read(move |conn| pending::find_with_user(conn, &jti, &sub))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let usable = row.consumed_at.is_none()
            && row.failed_attempts < MAX_CODE_ATTEMPTS
            && row.expires_at > now.naive_utc();
        if usable {
            Ok((row, user))
        } else {
            Err(AuthError::InvalidToken)
        }
    }

    /// Counts a wrong (or replayed) code against the pending token.
    async fn reject_code<T>(
        &self,
        pending: &PendingClaims,
        client: ClientInfo,
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
        Err(AuthError::InvalidOtp)
    }

    fn open_secret(&self, user: &UserRow) -> Result<Option<TotpSecret>, AuthError> {
        let (Some(sealed), Some(key_id)) = (&user.totp_secret, &user.totp_key_id) else {
            return Ok(None);
        };
        let bytes = self.inner.secrets.open(key_id, sealed, &user.id)?;
        TotpSecret::from_bytes(&bytes)
            .map(Some)
            .ok_or_else(|| AuthError::internal("stored TOTP secret has the wrong length"))
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

    fn pending_grant(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        next_step: NextStep,
    ) -> Result<(PendingClaims, PendingGrant), AuthError> {
        let ttl = self.inner.settings.pending_ttl;
        let claims = PendingClaims {
            sub: user_id.to_owned(),
            jti: Uuid::new_v4().to_string(),
            iss: self.inner.settings.issuer.clone(),
            aud: PENDING_AUDIENCE.to_owned(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        let token = self.inner.tokens.sign_pending(&claims)?;
        Ok((
            claims,
            PendingGrant {
                token,
                expires_in: ttl.num_seconds(),
                next_step,
            },
        ))
    }

    fn access_grant(
        &self,
        user_id: &str,
        session_id: &str,
        amr: &[&str],
        now: DateTime<Utc>,
    ) -> Result<AccessGrant, AuthError> {
        let ttl = self.inner.settings.access_ttl;
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            jti: Uuid::new_v4().to_string(),
            iss: self.inner.settings.issuer.clone(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
            aal: "aal2".to_owned(),
        };
        Ok(AccessGrant {
            access_token: self.inner.tokens.sign_access(&claims)?,
            expires_in: ttl.num_seconds(),
        })
    }
}

fn insert_pending(conn: &mut DbConnection, claims: &PendingClaims) -> Result<(), AuthError> {
    let expires_at: NaiveDateTime = DateTime::from_timestamp(claims.exp, 0)
        .ok_or_else(|| AuthError::internal("pending token expiry out of range"))?
        .naive_utc();
    pending::insert(
        conn,
        &NewPending {
            jti: &claims.jti,
            user_id: &claims.sub,
            expires_at,
        },
    )?;
    Ok(())
}
