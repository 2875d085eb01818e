//! The application service: the two-factor flow (register → password →
//! (setup) → code → session) and the account's life after that. It sits
//! between the HTTP layer and the two below it: it asks the pure domain
//! (`crate::auth`) what to decide and writes the outcome through the store
//! (`crate::store`). Each write is one transaction, so a failed request
//! leaves nothing half-done; a step may take more than one (login takes up
//! to four: the per-IP bucket, the reservation before bcrypt, then the
//! outcome), never leaving a half-written one behind.

mod account;
mod admin;
mod attempt;
mod authenticators;
mod deletion;
mod password_check;
mod password_step;
mod second_factor;
mod security_log;
mod session_cache;
mod sessions;
mod throttle;

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use crate::auth::clock::Clock;
use crate::auth::error::AuthError;
use crate::auth::opaque_token::{DeviceToken, RefreshToken};
use crate::auth::password::PasswordHasher;
use crate::auth::recovery::{self, RecoveryCode, RecoveryHasher};
use crate::auth::secret_box::SecretBox;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::throttle::ThrottleKeys;
use crate::auth::tokens::{
    ACCESS_AUDIENCE, AccessClaims, PENDING_AUDIENCE, PendingClaims, TokenKeys,
};
use crate::auth::totp::{TotpCode, TotpSecret};
use crate::store::authenticators::AuthenticatorRow;
use crate::store::devices::{self, NewDevice};
use crate::store::pending::NewPending;
use crate::store::sessions::{NewRefresh, NewSession};
use crate::store::users::UserRow;
use crate::store::{
    DbConnection, Store, StoreError, authenticators as authenticator_store, pending,
    sessions as session_store, users,
};

use attempt::{Attempt, Verdict};
use security_log::Record as _;
use session_cache::SessionCache;

pub use account::SecurityLogEntry;
pub use admin::{AccountSummary, Pruned};
pub use authenticators::{AddedAuthenticator, AuthenticatorInfo, AuthenticatorList};
pub use deletion::Erased;
pub use sessions::{LogoutScope, SessionSummary};
pub use throttle::Limits;

/// Wrong codes a pending token survives (the contract's limit).
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// Entries `GET /me/events` returns.
pub const EVENTS_SHOWN: i64 = 50;

#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// Shown in the authenticator app and used as the JWT `iss`.
    pub issuer: String,
    pub pending_ttl: Duration,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a session, whatever the refreshes.
    pub session_ttl: Duration,
    /// How long the security log keeps an event.
    pub event_retention: Duration,
    /// Lifetime of a device token (known devices).
    pub device_ttl: Duration,
    /// Live sessions kept in memory; 0: none.
    pub session_cache_size: usize,
    pub limits: Limits,
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

/// What a completed second factor or a refresh hands out.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: RefreshToken,
    pub refresh_expires_in: i64,
    /// Only on the verification that first enables two-factor.
    pub recovery_codes: Option<Vec<String>>,
    /// Only when the login behind a second factor carried no valid one.
    pub device_token: Option<DeviceToken>,
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
    /// None when switched off, or when its feed could not start.
    session_cache: Option<SessionCache>,
    /// One per core, for CPU-bound work off the async workers (QR codes):
    /// more threads at once would only queue on the cores, each holding its
    /// buffers meanwhile.
    cpu_turns: Arc<tokio::sync::Semaphore>,
    hasher: PasswordHasher,
    tokens: TokenKeys,
    secrets: SecretBox,
    recovery: RecoveryHasher,
    throttle_keys: ThrottleKeys,
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

/// The keys the flow holds.
pub struct Keys {
    pub tokens: TokenKeys,
    pub secrets: SecretBox,
    pub recovery: RecoveryHasher,
    pub throttle: ThrottleKeys,
}

impl Authenticator {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        keys: Keys,
        clock: Arc<dyn Clock>,
        settings: FlowSettings,
    ) -> Self {
        let session_cache = (settings.session_cache_size > 0)
            .then(|| SessionCache::start(&store, settings.session_cache_size))
            .and_then(|started| {
                started
                    .inspect_err(|error| {
                        tracing::warn!(%error, "no session cache: every request reads its session")
                    })
                    .ok()
            });
        Self {
            inner: Arc::new(Inner {
                session_cache,
                cpu_turns: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, usize::from),
                )),
                store,
                hasher,
                tokens: keys.tokens,
                secrets: keys.secrets,
                recovery: keys.recovery,
                throttle_keys: keys.throttle,
                clock,
                settings,
            }),
        }
    }

    /// Answers when the database does (for readiness probes).
    pub async fn ping(&self) -> Result<(), AuthError> {
        Ok(self.inner.store.ping().await?)
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.inner.tokens
    }

    /// The row key of what a throttle counts.
    fn throttle_key(&self, kind: &str, parts: &[&str]) -> String {
        self.inner.throttle_keys.key(kind, parts)
    }

    /// Microsecond precision: what both databases store.
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now().trunc_subsecs(6)
    }

    /// Runs `work` on a pooled connection, off the async workers.
    async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.store.read(work).await
    }

    /// Runs `work` in one write transaction, off the async workers: all of
    /// it commits or none of it does.
    async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.store.transaction(work).await
    }

    /// The user of a pending token, if the token is still usable.
    async fn live_pending(
        &self,
        claims: &PendingClaims,
        now: DateTime<Utc>,
    ) -> Result<UserRow, AuthError> {
        let claims = claims.clone();
        let live = self
            .read(move |conn| live_pending_in(conn, &claims, now))
            .await?;
        Ok(live.user)
    }

    /// Checks a code for an action taken with an access token (disable,
    /// new recovery codes, adding or removing an authenticator): a current,
    /// unused code of any confirmed authenticator; `action` then runs in
    /// the same transaction that records the code as used (an error of
    /// `action` rolls all of it back, the code unspent).
    async fn with_fresh_code<T, F>(
        &self,
        session: &Session,
        code: TotpCode,
        client: ClientInfo,
        action: F,
    ) -> Result<T, AuthError>
    where
        F: FnOnce(&mut DbConnection, chrono::NaiveDateTime) -> Result<T, AuthError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let now = self.now();
        let inner = Arc::clone(&self.inner);
        let (user_id, session_id) = (session.claims.sub.clone(), session.claims.sid.clone());
        let verdict = self
            .write(move |conn| {
                let user = users::find_by_id(conn, &user_id)?.ok_or(AuthError::InvalidToken)?;
                let attempt = inner.attempt(&user.id, &client, now, None);
                attempt.run(conn, |conn| {
                    // Checked again under the account's lock: a session
                    // revoked since the request was authenticated (the
                    // owner changed the password, say) acts no more.
                    if session_store::live_user(conn, &session_id, &user_id, now.naive_utc())?
                        .is_none()
                    {
                        return Err(AuthError::InvalidToken);
                    }
                    if inner.accept_totp(conn, &user, &code, now)?.is_some() {
                        action(conn, now.naive_utc()).map(Some)
                    } else {
                        Ok(None)
                    }
                })
            })
            .await?;
        match verdict {
            Verdict::Accepted(value) => Ok(value),
            Verdict::Rejected => Err(AuthError::InvalidOtp),
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

    /// A new session for `user_id`, ready to be written.
    fn open_session(&self, user_id: &str, amr: &[&str], now: DateTime<Utc>) -> SessionOpening {
        let expires_at = now + self.inner.settings.session_ttl;
        SessionOpening {
            session_id: Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
            created_at: now,
            expires_at,
            refresh: RefreshToken::generate(),
            refresh_expires_at: (now + self.inner.settings.refresh_ttl).min(expires_at),
            device: Some(DeviceToken::generate()),
            device_expires_at: now + self.inner.settings.device_ttl,
        }
    }

    /// Signs the access token for a session and packs the token response.
    fn token_grant(
        &self,
        session: GrantedSession<'_>,
        refresh: RefreshToken,
        refresh_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, AuthError> {
        let ttl = self.inner.settings.access_ttl;
        let claims = AccessClaims {
            sub: session.user_id.to_owned(),
            sid: session.id.to_owned(),
            jti: Uuid::new_v4().to_string(),
            iss: self.inner.settings.issuer.clone(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
            amr: session.amr,
            aal: "aal2".to_owned(),
            auth_time: session.created_at.timestamp(),
        };
        Ok(TokenGrant {
            access_token: self.inner.tokens.sign_access(&claims)?,
            expires_in: ttl.num_seconds(),
            refresh_token: refresh,
            refresh_expires_in: (refresh_expires_at - now).num_seconds(),
            recovery_codes: None,
            device_token: None,
        })
    }
}

impl Inner {
    /// Ten fresh codes: what to show, and what to store.
    fn new_recovery_codes(&self) -> (Vec<String>, Vec<String>) {
        (0..recovery::COUNT)
            .map(|_| {
                let code = RecoveryCode::generate();
                (code.display(), self.recovery.hash(&code))
            })
            .unzip()
    }

    /// A second-factor attempt by `user_id` under the configured limits.
    fn attempt<'a>(
        &self,
        user_id: &'a str,
        client: &'a ClientInfo,
        now: DateTime<Utc>,
        pending_jti: Option<&'a str>,
    ) -> Attempt<'a> {
        Attempt {
            user_id,
            client,
            policy: self.settings.limits.second_factor,
            counter_key: self.throttle_keys.key("second-factor", &[user_id]),
            now,
            pending_jti,
        }
    }

    /// Checks `code` against the user's authenticators that may sign in:
    /// the confirmed ones, and before two-factor is on the one being
    /// enrolled. Without any: setup first. Returns the id of the one that
    /// matched.
    fn accept_totp(
        &self,
        conn: &mut DbConnection,
        user: &UserRow,
        code: &TotpCode,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, AuthError> {
        let mut candidates = authenticator_store::confirmed(conn, &user.id)?;
        if !user.two_factor_enabled {
            candidates.extend(authenticator_store::unconfirmed(conn, &user.id)?);
        }
        if candidates.is_empty() {
            return Err(AuthError::TwoFactorSetupRequired);
        }
        self.accept_code_of(conn, &candidates, code, now)
    }

    /// The id of the first of `candidates` for which `code` is the code of
    /// a step newer than any it accepted before; that step and the use are
    /// recorded (the replay check, per authenticator, atomic with the
    /// transaction).
    fn accept_code_of(
        &self,
        conn: &mut DbConnection,
        candidates: &[AuthenticatorRow],
        code: &TotpCode,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, AuthError> {
        for candidate in candidates {
            let secret = self.open_secret(candidate)?;
            if let Some(step) = secret.matching_step(code, now.timestamp(), candidate.last_step)
                && authenticator_store::advance_step(conn, &candidate.id, step, now.naive_utc())?
            {
                return Ok(Some(candidate.id.clone()));
            }
        }
        Ok(None)
    }

    fn open_secret(&self, authenticator: &AuthenticatorRow) -> Result<TotpSecret, AuthError> {
        let bytes = self.secrets.open(
            &authenticator.totp_key_id,
            &authenticator.totp_secret,
            &authenticator.user_id,
        )?;
        TotpSecret::from_bytes(&bytes)
            .ok_or_else(|| AuthError::internal("stored TOTP secret has the wrong length"))
    }
}

/// A usable pending token: its user, and whether the login behind it came
/// from a known device.
struct LivePending {
    user: UserRow,
    known_device: bool,
}

/// The pending token's user, if the token is still usable.
fn live_pending_in(
    conn: &mut DbConnection,
    claims: &PendingClaims,
    now: DateTime<Utc>,
) -> Result<LivePending, AuthError> {
    let (row, user) =
        pending::find_with_user(conn, &claims.jti, &claims.sub)?.ok_or(AuthError::InvalidToken)?;
    let usable = row.consumed_at.is_none()
        && row.failed_attempts < MAX_CODE_ATTEMPTS
        && row.expires_at > now.naive_utc();
    if usable {
        Ok(LivePending {
            user,
            known_device: row.known_device,
        })
    } else {
        Err(AuthError::InvalidToken)
    }
}

/// The session an access token is signed for.
struct GrantedSession<'a> {
    id: &'a str,
    user_id: &'a str,
    amr: Vec<String>,
    /// When its second factor was passed: the token's `auth_time`.
    created_at: DateTime<Utc>,
}

/// A session about to be created (moved into the transaction that writes
/// it, then turned into tokens).
struct SessionOpening {
    session_id: String,
    user_id: String,
    amr: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    refresh: RefreshToken,
    refresh_expires_at: DateTime<Utc>,
    /// Handed out unless the login came from a known device.
    device: Option<DeviceToken>,
    device_expires_at: DateTime<Utc>,
}

impl SessionOpening {
    fn insert(
        &mut self,
        conn: &mut DbConnection,
        client: &ClientInfo,
        known_device: bool,
    ) -> Result<(), StoreError> {
        let at = self.created_at.naive_utc();
        if known_device {
            self.device = None;
        }
        if let Some(device) = &self.device {
            devices::insert(
                conn,
                &NewDevice {
                    token_hash: &device.hash(),
                    user_id: &self.user_id,
                    created_at: at,
                    expires_at: self.device_expires_at.naive_utc(),
                },
            )?;
        }
        session_store::insert(
            conn,
            &NewSession {
                id: &self.session_id,
                user_id: &self.user_id,
                amr: &self.amr.join(" "),
                created_at: at,
                expires_at: self.expires_at.naive_utc(),
                ip: client.ip.map(|ip| ip.to_string()).as_deref(),
                user_agent: client.user_agent.as_deref(),
            },
        )?;
        session_store::insert_refresh(
            conn,
            &NewRefresh {
                token_hash: &self.refresh.hash(),
                session_id: &self.session_id,
                expires_at: self.refresh_expires_at.naive_utc(),
                created_at: at,
            },
        )?;
        client.record(conn, &self.user_id, EventKind::LoginSucceeded, at)
    }

    fn into_grant(self, auth: &Authenticator) -> Result<TokenGrant, AuthError> {
        let grant = auth.token_grant(
            GrantedSession {
                id: &self.session_id,
                user_id: &self.user_id,
                amr: self.amr,
                created_at: self.created_at,
            },
            self.refresh,
            self.refresh_expires_at,
            self.created_at,
        )?;
        Ok(TokenGrant {
            device_token: self.device,
            ..grant
        })
    }
}

fn insert_pending(
    conn: &mut DbConnection,
    claims: &PendingClaims,
    known_device: bool,
) -> Result<(), AuthError> {
    let expires_at = DateTime::from_timestamp(claims.exp, 0)
        .ok_or_else(|| AuthError::internal("pending token expiry out of range"))?
        .naive_utc();
    pending::insert(
        conn,
        &NewPending {
            jti: &claims.jti,
            user_id: &claims.sub,
            expires_at,
            known_device,
        },
    )?;
    Ok(())
}

/// Store failures reach the caller as the domain's errors: an unreachable
/// database is worth a retry (503), anything else is internal.
impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable(error.into()),
            other => Self::Internal(other.into()),
        }
    }
}
