//! otpgate: password + TOTP two-factor authentication as a JSON REST API.
//!
//! [`Application`] builds the whole server so that `main` and the
//! integration tests start exactly the same thing.

pub mod auth;
pub mod config;
pub mod http;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod service;
pub mod store;
pub mod telemetry;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::middleware::from_fn;
use actix_web::rt::signal;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa_actix_web::AppExt;

use auth::password::PasswordHasher;
use auth::recovery::RecoveryHasher;
use auth::secret_box::SecretBox;
use auth::throttle::ThrottleKeys;
use auth::{Clock, SystemClock};
use config::Config;
use lifecycle::Lifecycle;
use service::{Authenticator, FlowSettings, Keys};
use store::Store;

/// A bound, ready-to-run server (and its metrics listener, if configured).
pub struct Application {
    server: actix_web::dev::Server,
    addr: SocketAddr,
    metrics: Option<(actix_web::dev::ServerHandle, SocketAddr)>,
    lifecycle: web::Data<Lifecycle>,
    pruner: tokio::task::JoinHandle<()>,
    store: Store,
    shutdown_delay: Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the domain's clock supplied (tests
    /// use it to stand at a chosen TOTP step).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let (authenticator, store) = open(&config, clock).await?;
        let pruner = tokio::spawn(prune_periodically(authenticator.clone()));
        let openapi = http::openapi();
        let openapi_json = web::Data::new(http::routes::docs::OpenApiJson(openapi_json(&openapi)));
        let routes = web::Data::new(http::RouteTable::from_openapi(&openapi));
        let authenticator = web::Data::new(authenticator);
        let lifecycle = web::Data::new(Lifecycle::default());
        let cors_origins = config.cors_origins.clone();
        let trusted_proxies = web::Data::new(http::extract::TrustedProxies(
            config.trusted_proxies.clone(),
        ));
        // Installed before the first request, so every one is counted.
        let metrics = config
            .metrics_bind
            .as_deref()
            .map(|bind| (bind, metrics::handle()));

        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let app_lifecycle = lifecycle.clone();
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
                .app_data(app_lifecycle.clone())
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
        // Signals are the caller's: see `run_until_signalled`.
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();
        let metrics = match metrics {
            Some((bind, handle)) => Some(serve_metrics(bind, handle, store.clone())?),
            None => None,
        };
        tracing::info!(
            %addr,
            metrics = %metrics
                .as_ref()
                .map_or_else(|| "off".to_owned(), |(_, addr)| addr.to_string()),
            database = %config.database_url.redacted(),
            "otpgate listening"
        );
        Ok(Self {
            server,
            addr,
            metrics,
            lifecycle,
            pruner,
            store,
            shutdown_delay: config.shutdown_delay,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `GET /metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// What begins a graceful shutdown of this server.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: self.server.handle(),
            lifecycle: self.lifecycle.clone(),
            delay: self.shutdown_delay,
        }
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let mut terminate = signal::unix::signal(signal::unix::SignalKind::terminate())?;
        actix_web::rt::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
            stopper.stop().await;
        });
        self.run_until_stopped().await
    }

    /// Serves until stopped (see [`Stopper`]), then closes the metrics
    /// listener and the database pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let abandoned = self.lifecycle.in_flight();
        if abandoned > 0 {
            tracing::warn!(abandoned, "shutdown timeout: requests abandoned unanswered");
        }
        if let Some((metrics, _)) = self.metrics {
            metrics.stop(true).await;
        }
        self.pruner.abort();
        drop(self.store);
        if abandoned == 0 {
            tracing::info!("stopped: every request answered, database pool closed");
        }
        served
    }
}

/// Begins a graceful shutdown: `/readyz` answers 503 from now on; after
/// `OTPGATE_SHUTDOWN_DELAY_SECS` the listener closes, and requests in
/// flight finish (within `OTPGATE_SHUTDOWN_TIMEOUT_SECS`).
#[derive(Clone)]
pub struct Stopper {
    server: actix_web::dev::ServerHandle,
    lifecycle: web::Data<Lifecycle>,
    delay: Duration,
}

impl Stopper {
    pub async fn stop(&self) {
        self.lifecycle.begin_draining();
        tracing::info!(
            in_flight = self.lifecycle.in_flight(),
            delay_secs = self.delay.as_secs(),
            "shutdown begun: /readyz answers 503"
        );
        actix_web::rt::time::sleep(self.delay).await;
        tracing::info!(
            in_flight = self.lifecycle.in_flight(),
            "listener closed: finishing the requests in flight"
        );
        self.server.stop(true).await;
    }
}

/// `GET /metrics` on a listener of its own: one worker, no signals (the
/// main server's shutdown stops it).
fn serve_metrics(
    bind: &str,
    handle: PrometheusHandle,
    store: Store,
) -> anyhow::Result<(actix_web::dev::ServerHandle, SocketAddr)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind} for metrics"))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        let (handle, store) = (handle.clone(), store.clone());
        App::new().route(
            "/metrics",
            web::get().to(move || {
                metrics::record_pool_state(store.pool_state());
                let body = handle.render();
                async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4; charset=utf-8")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    // A server runs only while its future is polled.
    actix_web::rt::spawn(server);
    Ok((handle, addr))
}

/// Everything the flow needs, from the configuration: keys (generated into
/// the data dir when not configured), the database, the bcrypt pool.
pub async fn build_authenticator(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Authenticator> {
    Ok(open(config, clock).await?.0)
}

/// The flow and the store under it. Refuses keys that differ from those
/// the database was first started with.
async fn open(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<(Authenticator, Store)> {
    let encryption_key = keys::encryption_key(config)?;
    let (token_keys, token_fingerprint) = keys::token_keys(config)?;
    let fingerprints = vec![
        token_fingerprint,
        keys::encryption_fingerprint(config, &encryption_key),
    ];
    keys::warn_unset_keys_on_postgres(config, &fingerprints);
    let url = config.database_url.clone();
    let pool_size = config.db_pool_size;
    let store = tokio::task::spawn_blocking(move || Store::open(&url, pool_size))
        .await?
        .context("cannot open the database")?
        .with_checkout_timeout(config.db_pool_timeout);
    keys::check_fingerprints(&store, fingerprints).await?;
    let cost = config.bcrypt_cost;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cost, threads)).await??;
    let keys = Keys {
        tokens: token_keys,
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
        session_cache_size: config.session_cache_size,
        limits: config.limits,
    };
    let authenticator = Authenticator::new(store.clone(), hasher, keys, clock, settings);
    Ok((authenticator, store))
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
        .allowed_methods(["GET", "POST", "DELETE"])
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
