//! otpgate: password + TOTP two-factor authentication as a JSON REST API.
//!
//! [`Application`] builds the whole server so that `main` and the
//! integration tests start exactly the same thing.

pub mod auth;
pub mod config;
pub mod http;
pub mod keys;
pub mod service;
pub mod store;
pub mod telemetry;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use utoipa_actix_web::AppExt;

use auth::password::PasswordHasher;
use auth::recovery::RecoveryHasher;
use auth::secret_box::SecretBox;
use auth::throttle::ThrottleKeys;
use auth::{Clock, SystemClock};
use config::Config;
use service::{Authenticator, FlowSettings, Keys};
use store::Store;

/// A bound, ready-to-run server.
pub struct Application {
    server: actix_web::dev::Server,
    addr: SocketAddr,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the domain's clock supplied (tests
    /// use it to stand at a chosen TOTP step).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let authenticator = build_authenticator(&config, clock).await?;
        tokio::spawn(prune_periodically(authenticator.clone()));
        let openapi = http::openapi();
        let openapi_json = web::Data::new(http::routes::docs::OpenApiJson(openapi_json(&openapi)));
        let routes = web::Data::new(http::RouteTable::from_openapi(&openapi));
        let authenticator = web::Data::new(authenticator);
        let cors_origins = config.cors_origins.clone();
        let trusted_proxies = web::Data::new(http::extract::TrustedProxies(
            config.trusted_proxies.clone(),
        ));

        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::middleware::limit_body))
                .wrap(cors(&cors_origins))
                .wrap(from_fn(http::middleware::problem_fallback))
                .wrap(from_fn(http::middleware::head_as_get))
                .wrap(http::middleware::security_headers())
                .wrap(from_fn(http::middleware::log_request))
                .wrap(from_fn(http::middleware::bound_client_waits))
                .app_data(authenticator.clone())
                .app_data(routes.clone())
                .app_data(trusted_proxies.clone())
                .app_data(openapi_json.clone())
                .app_data(web::PayloadConfig::new(http::extract::BODY_LIMIT))
                .into_utoipa_app()
                .configure(http::routes)
                .into_app()
                .default_service(web::to(http::unmatched))
        })
        .workers(config.workers)
        // Clients that trickle (slowloris) are cut off: actix answers 408 to
        // a first head that takes over 5 s and closes a kept-alive
        // connection idle for 5 s; later heads and bodies are bounded by
        // the connection's watchdog (`CLIENT_TIMEOUT`).
        .client_request_timeout(Duration::from_secs(5))
        .keep_alive(Duration::from_secs(5))
        .on_connect(http::middleware::watch_connection)
        .client_disconnect_timeout(Duration::from_secs(1))
        // Connections per worker, each holding two descriptors (its socket
        // and the watchdog's duplicate); more wait in the listen backlog.
        .max_connections(1024)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        tracing::info!(%addr, database = %config.database_url.redacted(), "otpgate listening");
        Ok(Self { server, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Everything the flow needs, from the configuration: keys (generated into
/// the data dir when not configured), the database, the bcrypt pool.
pub async fn build_authenticator(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Authenticator> {
    let encryption_key = keys::encryption_key(config)?;
    let url = config.database_url.clone();
    let pool_size = config.db_pool_size;
    let store = tokio::task::spawn_blocking(move || Store::open(&url, pool_size))
        .await?
        .context("cannot open the database")?;
    let cost = config.bcrypt_cost;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cost, threads)).await??;
    let keys = Keys {
        tokens: keys::token_keys(config)?,
        secrets: SecretBox::new(encryption_key, &config.previous_encryption_keys),
        recovery: RecoveryHasher::derived_from(&encryption_key, &config.previous_encryption_keys),
        throttle: ThrottleKeys::derived_from(&encryption_key),
    };
    let settings = FlowSettings {
        issuer: config.issuer.clone(),
        pending_ttl: config.pending_ttl,
        access_ttl: config.access_ttl,
        refresh_ttl: config.refresh_ttl,
        session_ttl: config.session_ttl,
        event_retention: config.event_retention,
        device_ttl: config.device_ttl,
        limits: config.limits,
    };
    Ok(Authenticator::new(store, hasher, keys, clock, settings))
}

/// Prunes old security events, spent pending tokens and ended sessions at
/// start-up and then hourly.
async fn prune_periodically(authenticator: Authenticator) {
    let mut interval = actix_web::rt::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        match authenticator.prune().await {
            Ok(pruned) => tracing::info!(
                events = pruned.events,
                pending_tokens = pruned.pending_tokens,
                sessions = pruned.sessions,
                devices = pruned.devices,
                "pruned"
            ),
            Err(error) => tracing::warn!(%error, "pruning failed"),
        }
    }
}

/// CORS for the configured exact origins only; with none, no cross-origin
/// access. A disallowed origin gets no CORS headers (the browser then
/// withholds the response) rather than an error.
fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .block_on_origin_mismatch(false)
        .max_age(600)
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json(api: &utoipa::openapi::OpenApi) -> String {
    http::openapi::document_json(api)
}
