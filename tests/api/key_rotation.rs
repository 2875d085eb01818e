//! Re-sealing secrets during an encryption-key rotation, against the store:
//! the race needs an instance on the old key to replace a secret between
//! the rotation's read and its write, which no single request can stage.

use otpgate::store::authenticators::{self, NewAuthenticator};
use otpgate::store::users::{self, NewUser};
use otpgate::store::{DatabaseUrl, DbConnection, Store, StoreError};

/// An unconfirmed authenticator of `u1` holding `sealed` under `key_id`.
fn enrol(conn: &mut DbConnection, id: &str, sealed: &[u8], key_id: &str) -> Result<(), StoreError> {
    authenticators::insert(
        conn,
        &NewAuthenticator {
            id,
            user_id: "u1",
            name: "default",
            totp_secret: sealed,
            totp_key_id: key_id,
            created_at: chrono::Utc::now().naive_utc(),
        },
    )
}

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
            enrol(conn, "a1", b"read-by-rotation", "old")?;
            // Meanwhile an instance still on the old key serves a disable
            // and a new setup: a new secret, under the same old key.
            authenticators::delete_all_for_user(conn, "u1")?;
            enrol(conn, "a2", b"new-secret", "old")?;
            // The rotation now writes what it re-sealed from its read.
            let replaced =
                authenticators::reseal_secret(conn, "a1", b"read-by-rotation", b"stale", "new")?;
            let resealed =
                authenticators::reseal_secret(conn, "a2", b"new-secret", b"fresh", "new")?;
            // A second write from the same stale read changes nothing.
            let again = authenticators::reseal_secret(conn, "a2", b"new-secret", b"stale", "new")?;
            assert!(!again, "a re-seal needs the ciphertext it read");
            Ok::<_, StoreError>((replaced, resealed))
        })
        .await
        .unwrap();
    assert!(
        !replaced,
        "a stale re-seal must not overwrite the new secret"
    );
    assert!(resealed, "the current secret is re-sealed");
    let enrolling = store
        .read(|conn| authenticators::unconfirmed(conn, "u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrolling.id, "a2");
    assert_eq!(enrolling.totp_secret, b"fresh");
    assert_eq!(enrolling.totp_key_id, "new");
}
