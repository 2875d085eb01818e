//! Account deletion, by the user (password + code) or by an operator: the
//! user row goes, the database cascades to everything that references it
//! (sessions and their refresh tokens, pending tokens, recovery codes,
//! device tokens, the security log), and the throttle rows keyed by the
//! user go in the same transaction. The username is free again.

use std::sync::Arc;

use super::{Account, Authenticator, Inner, Session};
use crate::auth::error::AuthError;
use crate::auth::password::Password;
use crate::auth::security_log::ClientInfo;
use crate::auth::totp::TotpCode;
use crate::store::users::UserRow;
use crate::store::{DbConnection, StoreError, devices, sessions, throttle, users};

/// What deleting an account removed besides the user row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Sessions, live or ended.
    pub sessions: usize,
    pub device_tokens: usize,
    /// Failure counters, request buckets and check claims.
    pub throttles: usize,
}

impl Authenticator {
    /// Deletes the signed-in user's account, given the password and a
    /// current code.
    pub async fn delete_account(
        &self,
        session: &Session,
        password: Password,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        self.check_password_again(session, password, &client)
            .await?;
        let inner = Arc::clone(&self.inner);
        let user_id = session.claims.sub.clone();
        self.with_fresh_code(session, code, client, move |conn, _| {
            let user = users::find_by_id(conn, &user_id)?.ok_or(AuthError::InvalidToken)?;
            inner.erase_account(conn, &user)?;
            Ok(())
        })
        .await
    }

    /// `otpgate admin delete-user`: the same erasure, without checks. None:
    /// no such user.
    pub async fn admin_delete_user(
        &self,
        name: &str,
    ) -> Result<Option<(Account, Erased)>, AuthError> {
        let Some(user) = self.user_by_name(name).await? else {
            return Ok(None);
        };
        let inner = Arc::clone(&self.inner);
        let id = user.id.clone();
        self.write(move |conn| {
            // Looked up again inside the transaction: it may be gone already.
            match users::find_by_id(conn, &id)? {
                Some(user) => Ok::<_, AuthError>(Some((inner.erase_account(conn, &user)?, user))),
                None => Ok(None),
            }
        })
        .await
        .map(|erased| erased.map(|(erased, user)| (Account::from(&user), erased)))
    }
}

impl Inner {
    /// Deletes `user` and every throttle row keyed by it: its second-factor
    /// lockout, its password-check claim and per-session streaks, its
    /// username's login counters and its devices' counters and buckets.
    /// (Per-address streaks of the username are keyed by addresses the
    /// server does not keep; they expire by themselves.)
    fn erase_account(&self, conn: &mut DbConnection, user: &UserRow) -> Result<Erased, StoreError> {
        let session_ids = sessions::ids_for_user(conn, &user.id)?;
        let device_hashes = devices::hashes_for_user(conn, &user.id)?;
        let key = |kind: &str, part: &str| self.throttle_keys.key(kind, &[part]);
        let mut keys = vec![
            key("second-factor", &user.id),
            key("password-check-in-flight", &user.id),
            key("login-username", &user.username_key),
        ];
        keys.extend(
            session_ids
                .iter()
                .map(|sid| key("password-check-session", sid)),
        );
        for hash in &device_hashes {
            keys.extend([key("login-device", hash), key("device", hash)]);
        }
        let throttles = throttle::delete_keys(conn, &keys)?;
        users::delete(conn, &user.id)?;
        Ok(Erased {
            sessions: session_ids.len(),
            device_tokens: device_hashes.len(),
            throttles,
        })
    }
}
