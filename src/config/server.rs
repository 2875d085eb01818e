//! How the server faces the network: address, issuer, proxies, origins,
//! workers and log format.

use std::net::{IpAddr, ToSocketAddrs};

use ipnet::IpNet;

use super::source::{Source, list, whole_number};
use super::{ConfigError, Overrides};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub(super) struct ServerSettings {
    pub bind: String,
    pub issuer: String,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    pub workers: usize,
    pub log_format: LogFormat,
    pub metrics_bind: Option<String>,
    pub shutdown_timeout: std::time::Duration,
    pub shutdown_delay: std::time::Duration,
}

/// `--bind` and `--issuer` win over their variables.
pub(super) fn read(source: Source, overrides: &Overrides) -> Result<ServerSettings, ConfigError> {
    let bind =
        source
            .flag("bind", &overrides.bind)
            .value("OTPGATE_BIND", "127.0.0.1:8080", address)?;
    let issuer =
        source
            .flag("issuer", &overrides.issuer)
            .value("OTPGATE_ISSUER", "otpgate", |issuer| {
                if issuer.contains(':') || issuer.chars().any(char::is_control) || issuer.len() > 64
                {
                    Err("must be at most 64 characters, without ':' or control characters".into())
                } else {
                    Ok(issuer.to_owned())
                }
            })?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Ok(ServerSettings {
        bind,
        issuer,
        trusted_proxies: source
            .optional("OTPGATE_TRUSTED_PROXIES", "none", |raw| list(raw, proxy))?
            .unwrap_or_default(),
        cors_origins: source
            .optional("OTPGATE_CORS_ORIGINS", "none", |raw| list(raw, cors_origin))?
            .unwrap_or_default(),
        workers: source
            .optional("OTPGATE_WORKERS", "number of cores", |raw| {
                whole_number(raw, &(1..=256))
            })?
            .map_or(cores, |workers| workers as usize),
        log_format: source.value("OTPGATE_LOG_FORMAT", "text", |raw| match raw {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be text or json".into()),
        })?,
        metrics_bind: source.optional("OTPGATE_METRICS_BIND", "off", address)?,
        shutdown_delay: seconds(source.number("OTPGATE_SHUTDOWN_DELAY_SECS", 0, 0..=600)?),
        shutdown_timeout: seconds(source.number("OTPGATE_SHUTDOWN_TIMEOUT_SECS", 30, 1..=3600)?),
    })
}

fn seconds(whole: i64) -> std::time::Duration {
    std::time::Duration::from_secs(whole.unsigned_abs())
}

/// A `host:port` to listen on.
fn address(bind: &str) -> Result<String, String> {
    match bind.to_socket_addrs() {
        Ok(_) => Ok(bind.to_owned()),
        Err(_) => Err(format!("{bind:?} is not a host:port address")),
    }
}

/// An IP address or CIDR block.
fn proxy(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR block"))
}

/// Exact origins only (`scheme://host[:port]`): no wildcard, no `null`.
fn cors_origin(origin: &str) -> Result<String, String> {
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
        Err(format!(
            "{origin:?} is not an exact origin like https://app.example.com"
        ))
    }
}
