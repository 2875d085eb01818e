//! What the integration tests share: a server per test (`TestApp`) on
//! either backend, the sign-up and sign-in steps, problem+json and header
//! checks; raw HTTP, token forging and the API paths in submodules.

pub mod clients;
pub mod jwt;
pub mod paths;
pub mod raw_http;
pub mod sessions;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use otpgate::Application;
use otpgate::auth::ManualClock;
use otpgate::config::{Config, Overrides};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;

use paths::{EVENTS, LOGIN, RECOVER, REGISTER, SETUP, VERIFY};

pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod <test> { sqlite, postgres }` for each async test function
/// taking a `TestApp`. The PostgreSQL variant runs when
/// OTPGATE_TEST_POSTGRES_URL is set (as `.ci/run` does) and fails if that
/// server cannot be reached.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {


                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = crate::helpers::TestApp::spawn(crate::helpers::Backend::Sqlite).await;
                    super::$test(app.expect("SQLite is always available")).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await {
                        Some(app) => super::$test(app).await,
                        None => eprintln!("OTPGATE_TEST_POSTGRES_URL unset: PostgreSQL variant not run"),
                    }
                }
            }
        )*
    };
}

/// As `on_both_backends!`, for tests taking a `Backend` that start their
/// own server(s) with `TestApp::spawn_with` (a None app: not run).
macro_rules! on_both_backends_with_own_settings {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test(crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test(crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    vars: HashMap<String, String>,
    _data_dir: Arc<tempfile::TempDir>,
    _database: Option<Arc<PostgresDatabase>>,
}

async fn start_server(vars: &HashMap<String, String>) -> (String, Arc<ManualClock>) {
    let config = Config::from_lookup(|name| vars.get(name).cloned(), &Overrides::default())
        .expect("test configuration");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("server starts");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    (address, clock)
}

/// A database of its own on the test PostgreSQL server, dropped afterwards.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

fn postgres_database() -> Option<(String, PostgresDatabase)> {
    let admin_url = std::env::var("OTPGATE_TEST_POSTGRES_URL").ok()?;
    let name = format!("otpgate_test_{}", uuid::Uuid::new_v4().simple());
    // As the server does (`store`): OpenSSL without its exit-time cleanup,
    // set up before this process's first libpq connection.
    openssl_sys::init();
    let mut conn = PgConnection::establish(&admin_url)
        .unwrap_or_else(|e| panic!("OTPGATE_TEST_POSTGRES_URL is set but unreachable: {e}"));
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .expect("create test database");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("OTPGATE_TEST_POSTGRES_URL ends in /<database>");
    Some((
        format!("{base}/{name}"),
        PostgresDatabase { admin_url, name },
    ))
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra environment settings.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (database_url, database) = match backend {
            Backend::Sqlite => (
                data_dir.path().join("otpgate.db").display().to_string(),
                None,
            ),
            Backend::Postgres => {
                let (url, database) = tokio::task::spawn_blocking(postgres_database)
                    .await
                    .unwrap()?;
                (url, Some(database))
            }
        };
        let data_dir_path = data_dir.path().display().to_string();
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("OTPGATE_DATA_DIR", data_dir_path.as_str()),
            ("OTPGATE_BIND", "127.0.0.1:0"),
            ("OTPGATE_BCRYPT_COST", "4"),
            ("OTPGATE_WORKERS", "2"),
            ("OTPGATE_DB_POOL_SIZE", "8"),
            ("OTPGATE_JWT_SECRET", JWT_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let (address, clock) = start_server(&vars).await;
        Some(Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            clock,
            database_url,
            vars,
            _data_dir: Arc::new(data_dir),
            _database: database.map(Arc::new),
        })
    }

    /// A second instance sharing this one's database, keys and settings,
    /// as several stateless instances behind a load balancer would.
    pub async fn spawn_sibling(&self) -> TestApp {
        self.spawn_sibling_with(&[]).await
    }

    /// A sibling with some settings changed (or removed, with an empty value).
    pub async fn spawn_sibling_with(&self, changes: &[(&str, &str)]) -> TestApp {
        let mut vars = self.vars.clone();
        for (k, v) in changes {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let (address, clock) = start_server(&vars).await;
        clock.set(self.clock_now());
        TestApp {
            address,
            client: self.client.clone(),
            clock,
            database_url: vars["DATABASE_URL"].clone(),
            vars,
            _data_dir: self._data_dir.clone(),
            _database: self._database.clone(),
        }
    }

    /// Runs `sql` on the test database directly, behind the server's back.
    pub fn execute_sql(&self, sql: &str) {
        let run = |result: diesel::QueryResult<usize>| result.expect("SQL runs");
        if self.database_url.starts_with("postgres") {
            let mut conn = PgConnection::establish(&self.database_url).unwrap();
            run(diesel::sql_query(sql).execute(&mut conn));
        } else {
            let mut conn = diesel::SqliteConnection::establish(&self.database_url).unwrap();
            run(diesel::sql_query(sql).execute(&mut conn));
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// A new, empty database of this app's backend: its URL, and (on
    /// PostgreSQL) what drops it when dropped.
    pub async fn empty_database(&self) -> (String, Option<PostgresDatabase>) {
        if self.database_url.starts_with("postgres") {
            let (url, database) = tokio::task::spawn_blocking(postgres_database)
                .await
                .unwrap()
                .expect("PostgreSQL is configured");
            (url, Some(database))
        } else {
            let name = format!("{}.db", uuid::Uuid::new_v4().simple());
            (self.data_dir().join(name).display().to_string(), None)
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    /// An unauthenticated POST of `{"username", "password"}`.
    pub async fn post_credentials(&self, path: &str, username: &str, password: &str) -> Response {
        self.post(
            path,
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers and returns the 201 body.
    pub async fn register(&self, username: &str) -> Value {
        let response = self.post_credentials(REGISTER, username, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "register {username}"
        );
        response.json().await.unwrap()
    }

    pub async fn login(&self, username: &str) -> Value {
        let response = self.post_credentials(LOGIN, username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login {username}");
        response.json().await.unwrap()
    }

    /// Logs in with the right password; the pending token.
    pub async fn login_pending(&self, username: &str) -> String {
        self.login(username).await["pending_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn setup(&self, pending_token: &str) -> Value {
        let response = self
            .request(Method::POST, SETUP, Some(pending_token), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "setup");
        response.json().await.unwrap()
    }

    /// Starts enrolment; the TOTP secret it hands out.
    pub async fn setup_secret(&self, pending_token: &str) -> String {
        self.setup(pending_token).await["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn verify(&self, pending_token: &str, code: &str) -> Response {
        self.post(VERIFY, Some(pending_token), json!({"code": code}))
            .await
    }

    /// Logs in and spends a recovery code instead of a TOTP code.
    pub async fn recover(&self, username: &str, code: &str) -> Response {
        let login = self.login(username).await;
        let pending = login["pending_token"].as_str().unwrap();
        self.post(RECOVER, Some(pending), json!({"recovery_code": code}))
            .await
    }

    /// The code for the server clock's step plus `offset`.
    pub fn code(&self, secret: &str, offset: i64) -> String {
        totp_code(secret, step_of(self.clock_now()) + offset)
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        use otpgate::auth::Clock;
        self.clock.now()
    }

    /// Moves the server's clock by whole TOTP steps.
    pub fn advance_steps(&self, steps: i64) {
        self.clock.advance(chrono::Duration::seconds(30 * steps));
    }

    /// Logs an enrolled user in with the current code; the 200 token
    /// response. (The clock stays: the next sign-in needs a later step.)
    pub async fn sign_in(&self, user: &EnrolledUser) -> Value {
        let login = self.login(&user.username).await;
        let pending = login["pending_token"].as_str().unwrap();
        let response = self.verify(pending, &self.code(&user.secret, 0)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "sign in {}",
            user.username
        );
        response.json().await.unwrap()
    }

    /// The security log seen with `tokens`' access token, newest first.
    pub async fn events(&self, tokens: &Value) -> Vec<Value> {
        let response = self.get(EVENTS, tokens["access_token"].as_str()).await;
        assert_eq!(response.status(), StatusCode::OK, "events");
        let body: Value = response.json().await.unwrap();
        body["events"].as_array().expect("an events array").clone()
    }

    /// Just the `type` of each event, newest first.
    pub async fn event_types(&self, tokens: &Value) -> Vec<String> {
        self.events(tokens)
            .await
            .iter()
            .map(|event| event["type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Registers, enrols and verifies: a user with 2FA on and a session.
    pub async fn enrolled_user(&self, username: &str) -> EnrolledUser {
        let registered = self.register(username).await;
        let pending = registered["pending_token"].as_str().unwrap();
        let secret = self.setup_secret(pending).await;
        let response = self.verify(pending, &self.code(&secret, 0)).await;
        assert_eq!(response.status(), StatusCode::OK, "first verify");
        let tokens: Value = response.json().await.unwrap();
        // The next code must come from a later step (no replay).
        self.advance_steps(1);
        EnrolledUser {
            username: username.to_owned(),
            user_id: registered["user"]["id"].as_str().unwrap().to_owned(),
            secret,
            tokens,
        }
    }
}

pub struct EnrolledUser {
    pub username: String,
    pub user_id: String,
    pub secret: String,
    pub tokens: Value,
}

impl EnrolledUser {
    pub fn access_token(&self) -> &str {
        self.tokens["access_token"].as_str().unwrap()
    }
}

pub fn step_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(30)
}

/// RFC 6238 / RFC 4226, written here independently of the server's code.
pub fn totp_code(secret_base32: &str, step: i64) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_base32)
        .expect("base32 secret");
    let mut mac = Hmac::<Sha1>::new_from_slice(&secret).unwrap();
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// Status, `code` and content type of a problem+json answer.
pub async fn problem(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    (status, body)
}

/// Asserts a problem answer with this status and code; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    let (actual, body) = problem(response).await;
    assert_eq!(actual.as_u16(), status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body
}

pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The headers the contract puts on every response, errors included.
pub fn assert_hardened(headers: &HeaderMap, context: &str) {
    let single = |name: &str| -> String {
        let values: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(
            values.len(),
            1,
            "{context}: exactly one {name} header, got {values:?}"
        );
        values[0].to_str().unwrap().to_owned()
    };
    assert_eq!(single("cache-control"), "no-store", "{context}");
    assert_eq!(single("x-content-type-options"), "nosniff", "{context}");
    assert_eq!(single("x-frame-options"), "DENY", "{context}");
    let csp = single("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{context}: CSP {csp:?}"
    );
}

/// A problem+json answer with this status and code and the security headers.
pub async fn expect_problem(response: Response, status: u16, code: &str, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context}");
    assert_hardened(response.headers(), context);
    assert_problem(response, status, code).await
}

/// A pending token of a freshly registered user (for /2fa/verify).
pub async fn pending_token(app: &TestApp) -> String {
    let registered = app.register(&unique_name("pending")).await;
    registered["pending_token"].as_str().unwrap().to_owned()
}
