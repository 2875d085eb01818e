//! Settings from the environment (and `.env`), with CLI flags on top. Every
//! problem names the variable at fault, so start-up fails with one clear line.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use ipnet::IpNet;

use crate::auth::secret_box::KEY_BYTES;
use crate::auth::throttle::{BucketPolicy, FailurePolicy};
use crate::auth::tokens::MIN_SECRET_BYTES;
use crate::service::Limits;
use crate::store::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (default).
    Hs256,
    /// Ed25519: verifiers need only the public keys at /.well-known/jwks.json.
    EdDsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub bind: String,
    pub jwt_algorithm: JwtAlgorithm,
    /// HS256 only. None: read or create `<data_dir>/jwt-secret`.
    pub jwt_secret: Option<Vec<u8>>,
    /// EdDSA only: PKCS#8 PEM. None: read or create `<data_dir>/jwt-ed25519.pem`.
    pub jwt_private_key_file: Option<PathBuf>,
    /// EdDSA only: a retiring public key (SPKI PEM) still accepted and published.
    pub jwt_previous_public_key_file: Option<PathBuf>,
    /// None: read or create `<data_dir>/encryption-key`.
    pub encryption_key: Option<[u8; KEY_BYTES]>,
    /// Retiring keys: still read, never written (during a rotation).
    pub previous_encryption_keys: Vec<[u8; KEY_BYTES]>,
    pub issuer: String,
    pub bcrypt_cost: u32,
    pub pending_ttl_secs: i64,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub event_retention_days: i64,
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub db_pool_size: u32,
    pub log_format: LogFormat,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.redacted())
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("pending_ttl_secs", &self.pending_ttl_secs)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("cors_origins", &self.cors_origins)
            .field("data_dir", &self.data_dir)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Values given on the command line; each wins over its variable.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub bind: Option<String>,
    pub issuer: Option<String>,
    pub bcrypt_cost: Option<String>,
    pub data_dir: Option<String>,
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env(overrides: &Overrides) -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok(), overrides)
    }

    /// Builds the configuration from any source of variables.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str, over: &Option<String>| {
            over.clone()
                .or_else(|| lookup(name))
                .filter(|value| !value.trim().is_empty())
        };
        let data_dir = PathBuf::from(
            get("OTPGATE_DATA_DIR", &overrides.data_dir).unwrap_or_else(|| "data".into()),
        );
        let database_url = match get("DATABASE_URL", &overrides.database_url) {
            Some(raw) => DatabaseUrl::parse(&raw).map_err(|e| invalid("DATABASE_URL", e))?,
            None => DatabaseUrl::Sqlite(data_dir.join("otpgate.db")),
        };
        let bind = get("OTPGATE_BIND", &overrides.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        if bind.to_socket_addrs().is_err() {
            return Err(invalid(
                "OTPGATE_BIND",
                format!("{bind:?} is not a host:port address"),
            ));
        }
        let jwt_secret = match get("OTPGATE_JWT_SECRET", &None) {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(invalid(
                    "OTPGATE_JWT_SECRET",
                    format!("must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            other => other.map(String::into_bytes),
        };
        let jwt_algorithm = match get("OTPGATE_JWT_ALG", &None).as_deref() {
            None | Some("HS256") => JwtAlgorithm::Hs256,
            Some("EdDSA") => JwtAlgorithm::EdDsa,
            Some(_) => return Err(invalid("OTPGATE_JWT_ALG", "must be HS256 or EdDSA")),
        };
        let jwt_private_key_file = get("OTPGATE_JWT_PRIVATE_KEY_FILE", &None).map(PathBuf::from);
        let jwt_previous_public_key_file =
            get("OTPGATE_JWT_PREVIOUS_PUBLIC_KEY_FILE", &None).map(PathBuf::from);
        let encryption_key = get("OTPGATE_ENCRYPTION_KEY", &None)
            .map(|raw| decode_key(&raw).map_err(|e| invalid("OTPGATE_ENCRYPTION_KEY", e)))
            .transpose()?;
        let previous_encryption_keys = get("OTPGATE_PREVIOUS_ENCRYPTION_KEYS", &None)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(|key| {
                        decode_key(key).map_err(|e| invalid("OTPGATE_PREVIOUS_ENCRYPTION_KEYS", e))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let issuer = get("OTPGATE_ISSUER", &overrides.issuer).unwrap_or_else(|| "otpgate".into());
        if issuer.contains(':') || issuer.chars().any(char::is_control) || issuer.len() > 64 {
            return Err(invalid(
                "OTPGATE_ISSUER",
                "must be at most 64 characters, without ':' or control characters",
            ));
        }
        let bcrypt_cost = number(
            "OTPGATE_BCRYPT_COST",
            get("OTPGATE_BCRYPT_COST", &overrides.bcrypt_cost),
            12,
            4..=31,
        )?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            database_url,
            bind,
            jwt_algorithm,
            jwt_secret,
            jwt_private_key_file,
            jwt_previous_public_key_file,
            encryption_key,
            previous_encryption_keys,
            issuer,
            bcrypt_cost: bcrypt_cost as u32,
            pending_ttl_secs: number(
                "OTPGATE_PENDING_TTL_SECS",
                get("OTPGATE_PENDING_TTL_SECS", &None),
                300,
                1..=3600,
            )?,
            access_ttl_secs: number(
                "OTPGATE_ACCESS_TTL_SECS",
                get("OTPGATE_ACCESS_TTL_SECS", &None),
                900,
                1..=86_400,
            )?,
            refresh_ttl_secs: number(
                "OTPGATE_REFRESH_TTL_SECS",
                get("OTPGATE_REFRESH_TTL_SECS", &None),
                30 * 86_400,
                1..=366 * 86_400,
            )?,
            event_retention_days: number(
                "OTPGATE_EVENT_RETENTION_DAYS",
                get("OTPGATE_EVENT_RETENTION_DAYS", &None),
                90,
                1..=3660,
            )?,
            session_ttl_secs: number(
                "OTPGATE_SESSION_TTL_SECS",
                get("OTPGATE_SESSION_TTL_SECS", &None),
                30 * 86_400,
                1..=366 * 86_400,
            )?,
            limits: limits(&|name| get(name, &None))?,
            trusted_proxies: trusted_proxies(get("OTPGATE_TRUSTED_PROXIES", &None))?,
            cors_origins: cors_origins(get("OTPGATE_CORS_ORIGINS", &None))?,
            data_dir,
            workers: number(
                "OTPGATE_WORKERS",
                get("OTPGATE_WORKERS", &None),
                cores as i64,
                1..=256,
            )? as usize,
            db_pool_size: number(
                "OTPGATE_DB_POOL_SIZE",
                get("OTPGATE_DB_POOL_SIZE", &None),
                10,
                1..=200,
            )? as u32,
            log_format: match get("OTPGATE_LOG_FORMAT", &None).as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(_) => return Err(invalid("OTPGATE_LOG_FORMAT", "must be text or json")),
            },
        })
    }
}

fn number(
    variable: &'static str,
    raw: Option<String>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<i64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(invalid(
            variable,
            format!(
                "{raw:?} is not a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn limits(get: &dyn Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let setting = |name: &'static str, default: i64, range| number(name, get(name), default, range);
    let base_lock_secs = setting("OTPGATE_LOCKOUT_BASE_SECS", 60, 1..=86_400)?;
    let max_lock_secs = setting("OTPGATE_LOCKOUT_MAX_SECS", 3600, 1..=7 * 86_400)?;
    if max_lock_secs < base_lock_secs {
        return Err(invalid(
            "OTPGATE_LOCKOUT_MAX_SECS",
            "must be at least OTPGATE_LOCKOUT_BASE_SECS",
        ));
    }
    let lockout =
        |failures_before_lock: i64, streak_window_secs, failures_per_hour: i64| FailurePolicy {
            failures_before_lock: failures_before_lock as u32,
            streak_window_secs,
            base_lock_secs,
            max_lock_secs,
            failures_per_hour: failures_per_hour as u32,
        };
    let ip_rate = setting("OTPGATE_IP_RATE_PER_MIN", 30, 0..=1_000_000)?;
    let ip_burst = setting("OTPGATE_IP_BURST", 60, 1..=1_000_000)?;
    Ok(Limits {
        second_factor: lockout(
            setting("OTPGATE_OTP_FAILURES_BEFORE_LOCK", 5, 1..=1000)?,
            None,
            setting("OTPGATE_OTP_FAILURES_PER_HOUR", 100, 1..=100_000)?,
        ),
        login_per_client: lockout(
            setting("OTPGATE_LOGIN_FAILURES_BEFORE_LOCK", 5, 1..=1000)?,
            Some(setting(
                "OTPGATE_LOGIN_FAILURE_WINDOW_SECS",
                900,
                1..=86_400,
            )?),
            0,
        ),
        login_per_username: lockout(
            0,
            None,
            setting("OTPGATE_LOGIN_FAILURES_PER_HOUR", 100, 1..=100_000)?,
        ),
        per_ip: (ip_rate > 0).then_some(BucketPolicy {
            rate_per_min: ip_rate as u32,
            burst: ip_burst as u32,
        }),
    })
}

/// IP addresses or CIDR blocks, comma-separated.
fn trusted_proxies(raw: Option<String>) -> Result<Vec<IpNet>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "OTPGATE_TRUSTED_PROXIES",
                        format!("{entry:?} is not an IP address or CIDR block"),
                    )
                })
        })
        .collect()
}

fn decode_key(raw: &str) -> Result<[u8; KEY_BYTES], String> {
    STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("must be {KEY_BYTES} bytes, base64-encoded"))
}

/// Exact origins only (`scheme://host[:port]`): no wildcard, no `null`.
fn cors_origins(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.contains('*')
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(invalid(
                    "OTPGATE_CORS_ORIGINS",
                    format!("{origin:?} is not an exact origin like https://app.example.com"),
                ))
            }
        })
        .collect()
}

/// Reads a 32-byte key kept (base64) in `<data_dir>/<name>`, creating it
/// with mode 0600 on first start. Returns the key and whether it is new.
pub fn load_or_create_key(
    data_dir: &Path,
    name: &str,
) -> Result<([u8; KEY_BYTES], bool), ConfigError> {
    let (text, created) = load_or_create_file(data_dir, name, || {
        let mut key = [0u8; KEY_BYTES];
        rand::fill(&mut key);
        STANDARD.encode(key) + "\n"
    })?;
    let key = decode_key(&text).map_err(|e| {
        invalid(
            "OTPGATE_DATA_DIR",
            format!("{}: {e}", data_dir.join(name).display()),
        )
    })?;
    Ok((key, created))
}

/// Reads `<data_dir>/<name>`, or creates it (mode 0600) with `make()` on
/// first start. Returns the text and whether it is new.
pub fn load_or_create_file(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), ConfigError> {
    use std::io::Write as _;
    let fail = |message: String| invalid("OTPGATE_DATA_DIR", message);
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((text, false)),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(fail(format!("cannot read {}: {error}", path.display())));
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", data_dir.display())))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let text = make();
            file.write_all(text.as_bytes())
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            Ok((text, true))
        }
        // Another instance created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_file(data_dir, name, make)
        }
        Err(error) => Err(fail(format!("cannot create {}: {error}", path.display()))),
    }
}

/// Reads a key file named by a setting.
pub fn read_key_file(variable: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| invalid(variable, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_serve_sqlite_on_loopback() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite("data/otpgate.db".into())
        );
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.pending_ttl_secs, 300);
        assert_eq!(config.access_ttl_secs, 900);
        assert!(config.cors_origins.is_empty());
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("OTPGATE_BCRYPT_COST", "3"),
            ("OTPGATE_BCRYPT_COST", "twelve"),
            ("OTPGATE_JWT_SECRET", "too short"),
            ("OTPGATE_BIND", "nowhere"),
            ("OTPGATE_CORS_ORIGINS", "*"),
            ("OTPGATE_CORS_ORIGINS", "null"),
            ("OTPGATE_ENCRYPTION_KEY", "c2hvcnQ="),
            ("DATABASE_URL", "mysql://x"),
            ("OTPGATE_ACCESS_TTL_SECS", "0"),
            ("OTPGATE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("OTPGATE_IP_RATE_PER_MIN", "-1"),
            ("OTPGATE_JWT_ALG", "RS256"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable, name, "{value}");
        }
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let config = config(&[("DATABASE_URL", "postgres://u:pw@db/otp")]).unwrap();
        assert!(config.database_url.is_postgres());
        assert_eq!(config.database_url.redacted(), "postgres://***@db/otp");
    }
}
