//! Re-sealing secrets during an encryption-key rotation, against the store:
//! the race needs an instance on the old key to replace a secret between
//! the rotation's read and its write, which no single request can stage.

use otpgate::store::users::{self, NewUser};
use otpgate::store::{DatabaseUrl, Store, StoreError};

#[tokio::test]
async fn a_reseal_never_overwrites_a_secret_replaced_meanwhile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("otpgate.db"));
    let store = tokio::task::spawn_blocking(move || Store::open(&url, 2))
        .await
        .unwrap()
        .unwrap();
    let (replaced, resealed) = store
        .transaction(|conn| {
            let at = chrono::Utc::now().naive_utc();
            let user = NewUser {
                id: "u1",
                username: "alice",
                username_key: "alice",
                password_hash: "x",
                created_at: at,
            };
            users::insert(conn, &user)?;
            // Read by the rotation: the secret sealed under the old key.
            users::store_secret_if_absent(conn, "u1", b"read-by-rotation", "old")?;
            // Meanwhile an instance still on the old key serves a disable
            // and a new setup: a new secret, under the same old key.
            users::disable_two_factor(conn, "u1")?;
            users::store_secret_if_absent(conn, "u1", b"new-secret", "old")?;
            // The rotation now writes what it re-sealed from its read.
            let replaced = users::reseal_secret(conn, "u1", b"read-by-rotation", b"stale", "new")?;
            let resealed = users::reseal_secret(conn, "u1", b"new-secret", b"fresh", "new")?;
            Ok::<_, StoreError>((replaced, resealed))
        })
        .await
        .unwrap();
    assert!(
        !replaced,
        "a stale re-seal must not overwrite the new secret"
    );
    assert!(resealed, "the current secret is re-sealed");
    let user = store
        .read(|conn| users::find_by_id(conn, "u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.totp_secret.as_deref(), Some(&b"fresh"[..]));
    assert_eq!(user.totp_key_id.as_deref(), Some("new"));
}
