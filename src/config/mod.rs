//! Settings from the environment (and `.env`), with CLI flags on top. Every
//! problem names the variable at fault, so start-up fails with one clear line.
//! Reading is pure: key files are the business of [`crate::keys`].

mod database;
mod keys;
mod limits;
mod server;
mod source;

use std::cell::RefCell;
use std::path::PathBuf;

use chrono::Duration;
use ipnet::IpNet;

pub use database::DATA_DIR;
pub(crate) use keys::decode_key;
pub use keys::{JWT_PREVIOUS_PUBLIC_KEY_FILE, JWT_PRIVATE_KEY_FILE, JwtAlgorithm};
pub use server::LogFormat;
pub use source::{Documented, WhenUnset};

use crate::auth::secret_box::KEY_BYTES;
use crate::service::Limits;
use crate::store::DatabaseUrl;
use source::Source;

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
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
    pub pending_ttl: Duration,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_ttl: Duration,
    pub event_retention: Duration,
    /// Lifetime of a device token (known devices).
    pub device_ttl: Duration,
    /// Live sessions kept in memory; 0: none (every request reads them).
    pub session_cache_size: usize,
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection.
    pub db_pool_timeout: std::time::Duration,
    pub log_format: LogFormat,
    /// Where `GET /metrics` is served; None: nowhere.
    pub metrics_bind: Option<String>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: std::time::Duration,
    /// After SIGTERM, how long to keep accepting while `/readyz` answers 503.
    pub shutdown_delay: std::time::Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.redacted())
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("pending_ttl", &self.pending_ttl)
            .field("access_ttl", &self.access_ttl)
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
        Self::read(Source::new(&lookup, &RefCell::default()), overrides)
    }

    /// Every variable read, in order, with its default and overriding flag:
    /// what `--help` and the README show.
    pub fn documented() -> Vec<Documented> {
        let record = RefCell::default();
        Self::read(Source::new(&|_| None, &record), &Overrides::default())
            .expect("the defaults are valid");
        record.into_inner()
    }

    fn read(source: Source, overrides: &Overrides) -> Result<Self, ConfigError> {
        let database = database::read(source, overrides)?;
        let server = server::read(source, overrides)?;
        let keys = keys::read(source)?;
        let seconds = Duration::seconds;
        Ok(Self {
            database_url: database.database_url,
            bind: server.bind,
            jwt_algorithm: keys.jwt_algorithm,
            jwt_secret: keys.jwt_secret,
            jwt_private_key_file: keys.jwt_private_key_file,
            jwt_previous_public_key_file: keys.jwt_previous_public_key_file,
            encryption_key: keys.encryption_key,
            previous_encryption_keys: keys.previous_encryption_keys,
            issuer: server.issuer,
            bcrypt_cost: source.flag("bcrypt_cost", &overrides.bcrypt_cost).number(
                "OTPGATE_BCRYPT_COST",
                12,
                4..=31,
            )? as u32,
            pending_ttl: source.duration("OTPGATE_PENDING_TTL_SECS", 300, 1..=3600, seconds)?,
            access_ttl: source.duration("OTPGATE_ACCESS_TTL_SECS", 900, 1..=86_400, seconds)?,
            refresh_ttl: source.duration(
                "OTPGATE_REFRESH_TTL_SECS",
                30 * 86_400,
                1..=366 * 86_400,
                seconds,
            )?,
            session_ttl: source.duration(
                "OTPGATE_SESSION_TTL_SECS",
                30 * 86_400,
                1..=366 * 86_400,
                seconds,
            )?,
            event_retention: source.duration(
                "OTPGATE_EVENT_RETENTION_DAYS",
                90,
                1..=3660,
                Duration::days,
            )?,
            device_ttl: source.duration(
                "OTPGATE_DEVICE_TTL_SECS",
                365 * 86_400,
                60..=3 * 366 * 86_400,
                seconds,
            )?,
            session_cache_size: source.number(
                "OTPGATE_SESSION_CACHE_SIZE",
                20_000,
                0..=10_000_000,
            )? as usize,
            limits: limits::read(source)?,
            trusted_proxies: server.trusted_proxies,
            cors_origins: server.cors_origins,
            data_dir: database.data_dir,
            workers: server.workers,
            db_pool_size: database.db_pool_size,
            db_pool_timeout: database.db_pool_timeout,
            log_format: server.log_format,
            metrics_bind: server.metrics_bind,
            shutdown_timeout: server.shutdown_timeout,
            shutdown_delay: server.shutdown_delay,
        })
    }
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
        assert_eq!(config.pending_ttl, Duration::seconds(300));
        assert_eq!(config.access_ttl, Duration::seconds(900));
        assert_eq!(config.event_retention, Duration::days(90));
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.metrics_bind, None);
        assert_eq!(config.shutdown_timeout, std::time::Duration::from_secs(30));
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
            ("OTPGATE_METRICS_BIND", "nowhere"),
            ("OTPGATE_DB_POOL_TIMEOUT_MS", "10"),
            ("OTPGATE_SHUTDOWN_TIMEOUT_SECS", "0"),
            ("OTPGATE_SHUTDOWN_DELAY_SECS", "-1"),
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

    #[test]
    fn error_messages_name_the_value_and_the_range() {
        let error = config(&[("OTPGATE_BCRYPT_COST", "3")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTPGATE_BCRYPT_COST: \"3\" is not a whole number from 4 to 31"
        );
        let error = config(&[
            ("OTPGATE_LOCKOUT_BASE_SECS", "600"),
            ("OTPGATE_LOCKOUT_MAX_SECS", "60"),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid OTPGATE_LOCKOUT_MAX_SECS: must be at least OTPGATE_LOCKOUT_BASE_SECS"
        );
    }

    #[test]
    fn flags_win_over_variables() {
        let overrides = Overrides {
            bind: Some("127.0.0.1:9999".into()),
            bcrypt_cost: Some("5".into()),
            ..Overrides::default()
        };
        let config = Config::from_lookup(
            |name| match name {
                "OTPGATE_BIND" => Some("127.0.0.1:1111".into()),
                "OTPGATE_BCRYPT_COST" => Some("6".into()),
                _ => None,
            },
            &overrides,
        )
        .unwrap();
        assert_eq!(config.bind, "127.0.0.1:9999");
        assert_eq!(config.bcrypt_cost, 5);
    }

    /// A variable read twice would have two defaults.
    #[test]
    fn each_variable_is_read_once() {
        let mut names: Vec<_> = Config::documented().iter().map(|d| d.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    /// The README's configuration table gives every variable the code reads,
    /// with the code's default (a value in backticks, or a description).
    #[test]
    fn readme_table_matches_the_code() {
        let readme = include_str!("../../README.md");
        let rows: Vec<(&str, &str)> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| variable | default |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`'), cells[2])
            })
            .collect();
        let documented = Config::documented();
        for setting in &documented {
            let expected = match &setting.default {
                WhenUnset::Value(value) => format!("`{value}`"),
                WhenUnset::Described(text) => text.clone(),
            };
            let row = rows.iter().find(|(name, _)| *name == setting.name);
            assert_eq!(
                row.map(|(_, default)| *default),
                Some(expected.as_str()),
                "README row for {}",
                setting.name
            );
        }
        for (name, _) in rows {
            // RUST_LOG is read by the log filter, not by the configuration.
            assert!(
                name == "RUST_LOG" || documented.iter().any(|setting| setting.name == name),
                "the README documents {name}, which the code never reads"
            );
        }
    }
}
