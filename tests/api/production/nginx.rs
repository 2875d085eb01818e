//! Three `otpgate` processes on one database behind Debian's nginx, set up
//! with the compose file's proxy settings (`deploy/otpgate-proxy.conf`), and
//! one user's flow spread across them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Client;
use serde_json::{Value, json};

use super::PostgresDatabase;
use super::instance::Instance;
use crate::helpers::paths::{EVENTS, LOGIN, LOGOUT, ME, REGISTER, SETUP, VERIFY};
use crate::helpers::{PASSWORD, step_of, totp_code, unique_name};

const KEY: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
/// The client's own address: nginx sees it, otpgate sees only nginx.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// nginx with a balanced port over all three instances, and one port
/// proxying to each instance alone (to choose where each step goes).
struct Nginx {
    child: Child,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: &[&Instance]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/otpgate-proxy.conf");
        let addr = |instance: &Instance| instance.address.trim_start_matches("http://").to_owned();
        let ports: Vec<u16> = (0..=upstreams.len())
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let server = |port: u16, upstream: &str| {
            format!(
                "server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{upstream}; include {}; }} }}\n",
                proxy.display()
            )
        };
        let mut http = format!(
            "upstream all {{ {} }}\n",
            upstreams
                .iter()
                .map(|i| format!("server {};", addr(i)))
                .collect::<String>()
        );
        http.push_str(&server(ports[0], "all"));
        for (port, instance) in ports[1..].iter().zip(upstreams) {
            http.push_str(&server(*port, &addr(instance)));
        }
        let temp = dir.path().display();
        let config = format!(
            "worker_processes 2;\nerror_log stderr warn;\npid {temp}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\naccess_log off;\nclient_body_temp_path {temp}/body;\nproxy_temp_path {temp}/proxy;\n\
             fastcgi_temp_path {temp}/fastcgi;\nuwsgi_temp_path {temp}/uwsgi;\nscgi_temp_path {temp}/scgi;\n{http}}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new(nginx().unwrap())
            .args([
                "-p",
                &temp.to_string(),
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Self {
            child,
            ports,
            _dir: dir,
        };
        for port in &nginx.ports {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "nginx is not listening on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        nginx
    }

    /// The balanced address, or the one in front of instance `i` (0, 1, 2).
    fn url(&self, via: Option<usize>, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.ports[via.map_or(0, |i| i + 1)]
        )
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its workers too.
    fn drop(&mut self) {
        super::instance::sigterm(&self.child);
        let _ = self.child.wait();
    }
}

fn nginx() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|path| Path::new(path).exists())
}

async fn post(client: &Client, url: String, token: Option<&str>, body: Value) -> reqwest::Response {
    let request = client.post(url).json(&body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// Logs in through `via`; the pending token.
async fn pending(client: &Client, nginx: &Nginx, via: usize, username: &str) -> String {
    let response = post(
        client,
        nginx.url(Some(via), LOGIN),
        None,
        json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), 200, "login via {via}");
    let body: Value = response.json().await.unwrap();
    body["pending_token"].as_str().unwrap().to_owned()
}

/// Registers and enrols through the balancer: the secret, the step its code
/// was used at, and the tokens.
async fn enrolled(client: &Client, nginx: &Nginx, username: &str) -> (String, i64, Value) {
    let body = json!({"username": username, "password": PASSWORD});
    assert_eq!(
        post(client, nginx.url(None, REGISTER), None, body)
            .await
            .status(),
        201
    );
    let token = pending(client, nginx, 0, username).await;
    let setup: Value = post(client, nginx.url(Some(0), SETUP), Some(&token), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let step = step_of(chrono::Utc::now());
    let verified = post(
        client,
        nginx.url(Some(1), VERIFY),
        Some(&token),
        json!({"code": totp_code(&secret, step)}),
    )
    .await;
    assert_eq!(verified.status(), 200, "verify via B");
    (secret, step, verified.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_nginx_act_as_one() {
    if nginx().is_none() {
        assert!(
            std::env::var_os("OTPGATE_REQUIRE_NGINX").is_none(),
            "nginx is missing: run .ci/ensure-nginx"
        );
        println!("note: skipped, nginx is not installed (.ci/ensure-nginx installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One PostgreSQL database when configured, else one SQLite file.
    let postgres = PostgresDatabase::from_env();
    let url = postgres.as_ref().map_or_else(
        || dir.path().join("shared.db").display().to_string(),
        |db| db.url.clone(),
    );
    let settings = [
        ("DATABASE_URL", url.as_str()),
        ("OTPGATE_ENCRYPTION_KEY", KEY),
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let instances: Vec<Instance> = (0..3).map(|_| Instance::listening(&settings)).collect();
    let nginx = Nginx::start(&instances.iter().collect::<Vec<_>>());
    let client = Client::builder().local_address(CLIENT).build().unwrap();
    let (a, b, c) = (0, 1, 2);

    // Setup via A, verify via B (in `enrolled`), the same code replayed via C.
    let username = unique_name("nginx");
    let (secret, step, tokens) = enrolled(&client, &nginx, &username).await;
    let token = pending(&client, &nginx, c, &username).await;
    let replayed = post(
        &client,
        nginx.url(Some(c), VERIFY),
        Some(&token),
        json!({"code": totp_code(&secret, step)}),
    )
    .await;
    assert_eq!(replayed.status(), 401, "replayed code via C");

    // The security log shows the client's own address, as nginx forwarded it.
    let access = tokens["access_token"].as_str().unwrap();
    let events: Value = client
        .get(nginx.url(Some(a), EVENTS))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ips: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ip"].as_str())
        .collect();
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| *ip == "127.0.0.2"),
        "{events}"
    );

    // Logout via C: the token is refused on A.
    let me = async |via| {
        client
            .get(nginx.url(Some(via), ME))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(me(a).await, 200);
    assert_eq!(
        post(&client, nginx.url(Some(c), LOGOUT), Some(access), json!({}))
            .await
            .status(),
        204
    );
    assert_eq!(me(a).await, 401, "logged out via C, used on A");

    // The second-factor lockout: 3 wrong codes via A, 2 via B; C refuses
    // even the right code, on a new login.
    let username = unique_name("lockout");
    let (secret, step, _) = enrolled(&client, &nginx, &username).await;
    let token = pending(&client, &nginx, a, &username).await;
    let near: Vec<String> = (step - 1..=step + 2)
        .map(|s| totp_code(&secret, s))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|code| !near.contains(code));
    for (i, code) in wrong.take(5).enumerate() {
        let via = if i < 3 { a } else { b };
        let response = post(
            &client,
            nginx.url(Some(via), VERIFY),
            Some(&token),
            json!({"code": code}),
        )
        .await;
        assert_eq!(response.status(), 401, "wrong code {i}");
    }
    // A fresh pending token: the first one died with its fifth wrong code.
    let token = pending(&client, &nginx, c, &username).await;
    let right = post(
        &client,
        nginx.url(Some(c), VERIFY),
        Some(&token),
        json!({"code": totp_code(&secret, step + 1)}),
    )
    .await;
    assert_eq!(right.status(), 429, "locked on C");

    // 20 parallel submissions of one code, spread over the three: one wins.
    let username = unique_name("race");
    let (secret, step, _) = enrolled(&client, &nginx, &username).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(pending(&client, &nginx, i % 3, &username).await);
    }
    let code = totp_code(&secret, step + 1);
    let submissions = tokens.into_iter().enumerate().map(|(i, token)| {
        let (client, url, code) = (client.clone(), nginx.url(Some(i % 3), VERIFY), code.clone());
        tokio::spawn(async move {
            post(&client, url, Some(&token), json!({"code": code}))
                .await
                .status()
                .as_u16()
        })
    });
    let mut statuses = Vec::new();
    for submission in submissions.collect::<Vec<_>>() {
        statuses.push(submission.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The others: the code is spent (401), or the account's code check is
    // busy with a concurrent one (429).
    assert!(
        statuses.iter().all(|s| [200, 401, 429].contains(s)),
        "{statuses:?}"
    );
}
