//! A database outage on a PostgreSQL of the test's own: requests fail fast
//! with 503 while it is down, and the service recovers by itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::instance::{Instance, fresh_connections, login, register};
use crate::helpers::paths::READYZ;
use crate::helpers::unique_name;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster in a temporary directory, run as user postgres.
struct OwnPostgres {
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// None when initdb (or the postgres user) is not available here.
    fn create() -> Option<Self> {
        let initdb = Path::new(PG_BIN).join("initdb");
        let user_exists = Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success());
        if !initdb.exists() || !user_exists {
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("otpgate-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        as_postgres(&["chown", "postgres", dir.to_str().unwrap()], false);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let postgres = Self { dir, port };
        as_postgres(
            &[
                initdb.to_str().unwrap(),
                "-D",
                postgres.data().as_str(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            true,
        );
        postgres.pg_ctl(&["start"]);
        Some(postgres)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, action: &[&str]) {
        let pg_ctl = Path::new(PG_BIN).join("pg_ctl");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let mut args = vec![
            pg_ctl.to_str().unwrap(),
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(action.iter().map(|a| (*a).to_owned()));
        as_postgres(&args.iter().map(String::as_str).collect::<Vec<_>>(), true);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command, as user postgres when `as_user` (initdb and pg_ctl refuse root).
fn as_postgres(args: &[&str], as_user: bool) {
    let output = if as_user {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
    } else {
        Command::new(args[0]).args(&args[1..]).output()
    }
    .unwrap();
    assert!(
        output.status.success() || args.contains(&"stop"),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_gives_fast_503s_and_recovers_by_itself() {
    let Some(postgres) = tokio::task::spawn_blocking(OwnPostgres::create)
        .await
        .unwrap()
    else {
        println!("note: skipped, no initdb at {PG_BIN} or no postgres user");
        return;
    };
    let server = Instance::listening(&[
        ("DATABASE_URL", &postgres.url()),
        (
            "OTPGATE_ENCRYPTION_KEY",
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        ),
        ("OTPGATE_DB_POOL_TIMEOUT_MS", "500"),
    ]);
    let client = fresh_connections();
    let users: Vec<String> = (0..5).map(|_| unique_name("outage")).collect();
    for user in &users {
        register(&client, &server.address, user).await;
        assert_eq!(
            login(&client, &server.address, user)
                .await
                .unwrap()
                .status(),
            200
        );
    }

    postgres.pg_ctl(&["-m", "fast", "stop"]);
    // While it is down: 503, fast (the pool wait is 500 ms).
    for user in &users {
        let started = Instant::now();
        let response = login(&client, &server.address, user).await.unwrap();
        assert_eq!(response.status(), 503, "{user}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let ready = client.get(server.url(READYZ)).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    let back = Instant::now();
    postgres.pg_ctl(&["start"]);
    let started_in = back.elapsed();
    // Recovered: ready, and every user created before the outage signs in.
    let recovered = loop {
        let ready = client
            .get(server.url(READYZ))
            .send()
            .await
            .unwrap()
            .status()
            == 200;
        let mut all = ready;
        for user in users.iter().filter(|_| ready) {
            all &= login(&client, &server.address, user)
                .await
                .unwrap()
                .status()
                == 200;
        }
        if all {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no recovery after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "recovered {:?} after PostgreSQL was started again ({:?} of which PostgreSQL took to start)",
        recovered, started_in
    );
    // And stays recovered: no stale connection fails a request later.
    for user in &users {
        assert_eq!(
            login(&client, &server.address, user)
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert!(recovered < Duration::from_secs(10));
}
