//! An `otpgate serve` process with JSON logs, its addresses read from its
//! "listening" line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::paths::{LOGIN, REGISTER};
use crate::helpers::{JWT_SECRET, PASSWORD};

pub struct Instance {
    pub child: Child,
    pub address: String,
    pub metrics: Option<String>,
    /// Every line it wrote to stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

/// How a start ended: listening, or exited with this code and stderr.
pub enum Started {
    Listening(Instance),
    Exited(i32, String),
}

/// Settings every instance gets unless overridden (an empty value unsets).
fn base_env(data_dir: &std::path::Path) -> Vec<(String, String)> {
    [
        (
            "DATABASE_URL",
            data_dir.join("otpgate.db").display().to_string(),
        ),
        ("OTPGATE_DATA_DIR", data_dir.display().to_string()),
        ("OTPGATE_BIND", "127.0.0.1:0".into()),
        ("OTPGATE_BCRYPT_COST", "4".into()),
        ("OTPGATE_WORKERS", "2".into()),
        ("OTPGATE_JWT_SECRET", JWT_SECRET.into()),
        ("OTPGATE_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Instance {
    pub fn start(settings: &[(&str, &str)]) -> Started {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_otpgate"));
        // No `.env` of the checkout is read.
        command.current_dir(data_dir.path());
        for (name, value) in base_env(data_dir.path()) {
            command.env(name, value);
        }
        for (name, value) in settings {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("otpgate starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (listening, addresses) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "otpgate listening"
                {
                    let _ = listening.send(entry);
                }
                sink.lock().unwrap().push(line);
            }
        });
        match addresses.recv_timeout(Duration::from_secs(60)) {
            Ok(entry) => Started::Listening(Instance {
                child,
                address: format!("http://{}", entry["addr"].as_str().unwrap()),
                metrics: entry["metrics"]
                    .as_str()
                    .filter(|addr| *addr != "off")
                    .map(|addr| format!("http://{addr}")),
                logs,
                _data_dir: data_dir,
            }),
            Err(_) => {
                let status = child.wait().unwrap();
                // The reader thread drains the rest of stderr.
                std::thread::sleep(Duration::from_millis(200));
                let stderr = logs.lock().unwrap().join("\n");
                Started::Exited(status.code().unwrap_or(-1), stderr)
            }
        }
    }

    pub fn listening(settings: &[(&str, &str)]) -> Instance {
        match Self::start(settings) {
            Started::Listening(instance) => instance,
            Started::Exited(code, stderr) => panic!("exited with {code}: {stderr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn sigterm(&self) {
        sigterm(&self.child);
    }

    /// The JSON log entries with this message.
    pub fn log_entries(&self, message: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["message"] == message)
            .collect()
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, within: Duration) -> i32 {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that opens a new connection per request, so that every request
/// is either refused a connection or accepted whole.
pub fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn register(client: &reqwest::Client, base: &str, username: &str) {
    let response = client
        .post(format!("{base}{REGISTER}"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "register {username}");
}

pub async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base}{LOGIN}"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
