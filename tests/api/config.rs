//! What start-up leaves on disk.

use std::path::Path;

use crate::helpers::{Backend, TestApp};

/// The SQLite file and its WAL and shared-memory files hold password hashes
/// and encrypted secrets: readable by the owner only, like the key files.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    app.register("alice").await;
    let database = Path::new(&app.database_url);
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", database.display());
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path} has mode {:o}", mode & 0o777);
    }
}
