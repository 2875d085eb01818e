//! Two instances on one database with different keys: the second refuses to
//! start, naming the variable, unless the first key is listed as retiring.

use super::PostgresDatabase;
use super::instance::{Instance, Started};

const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn refused(settings: &[(&str, &str)]) -> (i32, String) {
    match Instance::start(settings) {
        Started::Listening(_) => panic!("started with a key the database does not know"),
        Started::Exited(code, stderr) => (code, stderr),
    }
}

#[test]
fn a_second_instance_with_other_keys_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    // A SQLite file, and a PostgreSQL database when one is configured.
    let postgres = PostgresDatabase::from_env();
    let sqlite = dir.path().join("shared.db").display().to_string();
    for url in std::iter::once(sqlite).chain(postgres.as_ref().map(|db| db.url.clone())) {
        let first =
            Instance::listening(&[("DATABASE_URL", &url), ("OTPGATE_ENCRYPTION_KEY", KEY_A)]);

        // Unset keys: each instance generates its own in its data dir.
        let (code, stderr) = refused(&[("DATABASE_URL", &url), ("OTPGATE_JWT_SECRET", "")]);
        assert_eq!(code, 2, "{stderr}");
        let jwt = "otpgate: invalid OTPGATE_JWT_SECRET: not the key this database was first \
                   started with (it is unset, so this instance made its own in the data dir): \
                   every instance sharing a database needs the same key";
        assert!(stderr.lines().any(|line| line == jwt), "{url}: {stderr}");

        let (code, stderr) = refused(&[("DATABASE_URL", &url), ("OTPGATE_ENCRYPTION_KEY", KEY_B)]);
        assert_eq!(code, 2, "{stderr}");
        let encryption = "otpgate: invalid OTPGATE_ENCRYPTION_KEY: not the key this database was \
                          first started with: every instance sharing a database needs the same \
                          key, listing the retiring one in OTPGATE_PREVIOUS_ENCRYPTION_KEYS \
                          during a rotation";
        assert!(
            stderr.lines().any(|line| line == encryption),
            "{url}: {stderr}"
        );
        println!("key mismatch at start-up: {encryption}");

        // A rotation: the new key with the old one retiring starts, and
        // from then on the new key alone does; the old one alone no longer.
        let rotated = Instance::listening(&[
            ("DATABASE_URL", &url),
            ("OTPGATE_ENCRYPTION_KEY", KEY_B),
            ("OTPGATE_PREVIOUS_ENCRYPTION_KEYS", KEY_A),
        ]);
        drop((first, rotated));
        drop(Instance::listening(&[
            ("DATABASE_URL", &url),
            ("OTPGATE_ENCRYPTION_KEY", KEY_B),
        ]));
        let (code, _) = refused(&[("DATABASE_URL", &url), ("OTPGATE_ENCRYPTION_KEY", KEY_A)]);
        assert_eq!(code, 2);
    }
}

#[test]
fn unset_keys_on_postgres_are_named_at_start_up() {
    let Some(database) = PostgresDatabase::from_env() else {
        return;
    };
    let server = Instance::listening(&[("DATABASE_URL", &database.url)]);
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("OTPGATE_ENCRYPTION_KEY is not set: on PostgreSQL every instance sharing the database needs the same key"),
        "{logs}"
    );
}
