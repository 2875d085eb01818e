//! Keys: the configured ones, or ones generated on first start into the data
//! dir (mode 0600) and read back on every later start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::secret_box::KEY_BYTES;
use crate::auth::tokens::{KeyError, TokenKeys};
use crate::config::{
    Config, ConfigError, DATA_DIR, JWT_PREVIOUS_PUBLIC_KEY_FILE, JWT_PRIVATE_KEY_FILE,
    JwtAlgorithm, decode_key,
};
use crate::store::Store;
use crate::store::key_fingerprints::{self, Recorded};

const JWT_SECRET: &str = "OTPGATE_JWT_SECRET";
const ENCRYPTION_KEY: &str = "OTPGATE_ENCRYPTION_KEY";

/// The key that encrypts TOTP secrets at rest.
pub fn encryption_key(config: &Config) -> anyhow::Result<[u8; KEY_BYTES]> {
    Ok(match config.encryption_key {
        Some(key) => key,
        None => announce_generated(
            load_or_create_key(&config.data_dir, "encryption-key")?,
            config,
            "encryption-key",
            "OTPGATE_ENCRYPTION_KEY is not set: generated a random key for TOTP secrets; back \
             it up, it cannot be recovered",
        ),
    })
}

/// The JWT keys the configuration names, generating what is missing into
/// the data dir (with a warning, since other instances cannot know them),
/// and their fingerprint.
pub fn token_keys(config: &Config) -> anyhow::Result<(TokenKeys, KeyFingerprint)> {
    let (keys, hs256_secret) = load_token_keys(config)?;
    let fingerprint = match hs256_secret {
        Some(secret) => KeyFingerprint {
            name: "jwt_hs256",
            variable: JWT_SECRET,
            generated: config.jwt_secret.is_none(),
            current: fingerprint(&secret),
            retiring: Vec::new(),
            rotation: "",
        },
        None => {
            // EdDSA: the public keys as published, the current one first,
            // then any retiring one.
            let mut public = keys
                .jwks()
                .iter()
                .map(|jwk| fingerprint(jwk["x"].as_str().unwrap_or_default().as_bytes()));
            KeyFingerprint {
                name: "jwt_ed25519",
                variable: JWT_PRIVATE_KEY_FILE,
                generated: config.jwt_private_key_file.is_none(),
                current: public.next().unwrap_or_default(),
                retiring: public.collect(),
                rotation: ", listing the retiring public key in \
                           OTPGATE_JWT_PREVIOUS_PUBLIC_KEY_FILE during a rotation",
            }
        }
    };
    Ok((keys, fingerprint))
}

/// The fingerprint of the key that encrypts TOTP secrets.
pub fn encryption_fingerprint(config: &Config, key: &[u8; KEY_BYTES]) -> KeyFingerprint {
    KeyFingerprint {
        name: "encryption",
        variable: ENCRYPTION_KEY,
        generated: config.encryption_key.is_none(),
        current: fingerprint(key),
        retiring: config
            .previous_encryption_keys
            .iter()
            .map(|key| fingerprint(key))
            .collect(),
        rotation: ", listing the retiring one in OTPGATE_PREVIOUS_ENCRYPTION_KEYS during a rotation",
    }
}

/// A key as the database remembers it: an HMAC of a fixed label under the
/// key, which reveals nothing about the key itself.
#[derive(Debug, Clone)]
pub struct KeyFingerprint {
    /// The row it is recorded under.
    name: &'static str,
    /// The setting that gives the key, named when it does not match.
    variable: &'static str,
    /// The key was not configured: this instance generated or read its own.
    generated: bool,
    current: String,
    /// Of keys being rotated out: the database may still record one of them.
    retiring: Vec<String>,
    /// How a rotation keeps both keys, appended to the mismatch message.
    rotation: &'static str,
}

fn fingerprint(key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"otpgate/key-fingerprint/v1");
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Records each key's fingerprint in the database at its first start, and
/// refuses (a configuration error naming the variable) a key the database
/// was not started with, unless that one is listed as retiring.
pub async fn check_fingerprints(
    store: &Store,
    fingerprints: Vec<KeyFingerprint>,
) -> anyhow::Result<()> {
    for key in fingerprints {
        let (name, current, retiring) = (key.name, key.current.clone(), key.retiring.clone());
        let recorded = store
            .read(move |conn| key_fingerprints::record(conn, name, &current, &retiring))
            .await
            .context("cannot check the keys' fingerprints")?;
        match recorded {
            Recorded::First => tracing::info!(key = key.variable, "key fingerprint recorded"),
            Recorded::Same => {}
            Recorded::Rotated => {
                tracing::info!(key = key.variable, "key rotated: fingerprint updated");
            }
            Recorded::Other => {
                let unset = if key.generated {
                    " (it is unset, so this instance made its own in the data dir)"
                } else {
                    ""
                };
                return Err(ConfigError {
                    variable: key.variable,
                    message: format!(
                        "not the key this database was first started with{unset}: every \
                         instance sharing a database needs the same key{}",
                        key.rotation
                    ),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// On PostgreSQL, several instances usually share the database, and keys
/// they each generate would differ: says so, one line per unset key.
pub fn warn_unset_keys_on_postgres(config: &Config, fingerprints: &[KeyFingerprint]) {
    if !config.database_url.is_postgres() {
        return;
    }
    for key in fingerprints.iter().filter(|key| key.generated) {
        tracing::error!(
            "{} is not set: on PostgreSQL every instance sharing the database needs the same \
             key, and this one uses its own from {}; set {} on every instance",
            key.variable,
            config.data_dir.display(),
            key.variable
        );
    }
}

/// The JWT keys, and the secret they were made from under HS256.
fn load_token_keys(config: &Config) -> anyhow::Result<(TokenKeys, Option<Vec<u8>>)> {
    match config.jwt_algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = match &config.jwt_secret {
                Some(secret) => secret.clone(),
                None => announce_generated(
                    load_or_create_key(&config.data_dir, "jwt-secret")?,
                    config,
                    "jwt-secret",
                    "OTPGATE_JWT_SECRET is not set: generated a random JWT secret; set \
                     OTPGATE_JWT_SECRET to share one across instances",
                )
                .to_vec(),
            };
            Ok((TokenKeys::hs256(&secret, &config.issuer)?, Some(secret)))
        }
        JwtAlgorithm::EdDsa => {
            let private_pem = match &config.jwt_private_key_file {
                Some(path) => read_key_file(JWT_PRIVATE_KEY_FILE, path)?,
                None => {
                    // Generated up front (it is cheap) and written only if
                    // no key file exists yet.
                    let fresh = TokenKeys::generate_ed25519_pem()
                        .map_err(|e| anyhow::anyhow!("cannot generate an Ed25519 key: {e}"))?;
                    announce_generated(
                        load_or_create_file(&config.data_dir, "jwt-ed25519.pem", || fresh)?,
                        config,
                        "jwt-ed25519.pem",
                        "OTPGATE_JWT_PRIVATE_KEY_FILE is not set: generated an Ed25519 signing key",
                    )
                }
            };
            let previous = config
                .jwt_previous_public_key_file
                .as_deref()
                .map(|path| read_key_file(JWT_PREVIOUS_PUBLIC_KEY_FILE, path))
                .transpose()?;
            let keys = TokenKeys::ed25519(&private_pem, previous.as_deref(), &config.issuer);
            let keys = keys.map_err(|e| {
                let variable = match e {
                    KeyError::Private(_) => JWT_PRIVATE_KEY_FILE,
                    KeyError::PreviousPublic(_) => JWT_PREVIOUS_PUBLIC_KEY_FILE,
                };
                anyhow::Error::from(ConfigError {
                    variable,
                    message: e.to_string(),
                })
            })?;
            Ok((keys, None))
        }
    }
}

/// Passes on a key loaded from the data dir, warning when it was generated
/// just now (other instances cannot know it, and losing it matters).
fn announce_generated<T>((key, created): (T, bool), config: &Config, file: &str, why: &str) -> T {
    if created {
        tracing::warn!(
            path = %config.data_dir.join(file).display(),
            "{why} (saved with mode 0600)"
        );
    }
    key
}

/// Reads a 32-byte key kept (base64) in `<data_dir>/<name>`, creating it on
/// first start. Returns the key and whether it is new.
fn load_or_create_key(data_dir: &Path, name: &str) -> Result<([u8; KEY_BYTES], bool), ConfigError> {
    let (text, created) = load_or_create_file(data_dir, name, || {
        let mut key = [0u8; KEY_BYTES];
        rand::fill(&mut key);
        STANDARD.encode(key) + "\n"
    })?;
    let key = decode_key(&text)
        .map_err(|e| data_dir_error(format!("{}: {e}", data_dir.join(name).display())))?;
    Ok((key, created))
}

/// Reads `<data_dir>/<name>`, or creates it (mode 0600) with `make()` on
/// first start. Returns the text and whether it is new.
///
/// The file appears complete or not at all: it is written and fsynced under
/// a temporary name, then hard-linked into place, which fails if the name is
/// taken. Of several instances starting at once, one key wins and the others
/// read it.
fn load_or_create_file(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), ConfigError> {
    let path = data_dir.join(name);
    if let Some(text) = read_existing(&path)? {
        return Ok((text, false));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| data_dir_error(format!("cannot create {}: {e}", data_dir.display())))?;
    let text = make();
    let temp = TempFile::write(data_dir, name, &text)?;
    match std::fs::hard_link(&temp.0, &path) {
        Ok(()) => {
            // Makes the new name itself survive a crash; the key works
            // without it, so a failure here is not worth stopping for.
            let _ = std::fs::File::open(data_dir).and_then(|dir| dir.sync_all());
            Ok((text, true))
        }
        // Another instance created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read_existing(&path)?
            .map(|text| (text, false))
            .ok_or_else(|| data_dir_error(format!("{} vanished", path.display()))),
        Err(error) => Err(data_dir_error(format!(
            "cannot create {}: {error}",
            path.display()
        ))),
    }
}

/// The file's text, or None if there is no such file. An empty one is an
/// error rather than absent: it may be a key lost by truncation, and a new
/// key would silently orphan what the old one protected.
fn read_existing(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Err(data_dir_error(format!(
            "{} is empty: restore it from a backup, or delete it to generate a new key",
            path.display()
        ))),
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(data_dir_error(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

/// A fully written, fsynced file (mode 0600) under a temporary name in the
/// data dir, removed when dropped (a hard link made from it stays).
struct TempFile(PathBuf);

impl TempFile {
    fn write(data_dir: &Path, name: &str, text: &str) -> Result<Self, ConfigError> {
        let mut suffix = [0u8; 8];
        rand::fill(&mut suffix);
        let temp = Self(data_dir.join(format!(".{name}.{:016x}.tmp", u64::from_ne_bytes(suffix))));
        let fail =
            |e: std::io::Error| data_dir_error(format!("cannot write {}: {e}", temp.0.display()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp.0).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        Ok(temp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn data_dir_error(message: String) -> ConfigError {
    ConfigError {
        variable: DATA_DIR,
        message,
    }
}

/// Reads a key file named by a setting.
fn read_key_file(variable: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        variable,
        message: format!("cannot read {}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// Many instances starting at once on a fresh data dir; each takes a
    /// while to make its key, so a half-written file would be seen.
    #[test]
    fn starters_racing_on_one_dir_all_get_the_same_complete_key() {
        let dir = tempfile::tempdir().unwrap();
        let starters = 16;
        let barrier = Arc::new(Barrier::new(starters));
        let texts: Vec<_> = (0..starters)
            .map(|starter| {
                let (dir, barrier) = (dir.path().to_owned(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    load_or_create_file(&dir, "jwt-ed25519.pem", || {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        format!("key of starter {starter}\n")
                    })
                    .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|starter| starter.join().unwrap())
            .collect();
        assert_eq!(texts.iter().filter(|(_, created)| *created).count(), 1);
        assert!(
            texts.iter().all(|(text, _)| *text == texts[0].0),
            "{texts:?}"
        );
        let on_disk = std::fs::read_to_string(dir.path().join("jwt-ed25519.pem")).unwrap();
        assert_eq!(on_disk, texts[0].0);
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_generated_key_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = load_or_create_key(dir.path(), "encryption-key").unwrap();
        assert!(created);
        assert_eq!(
            load_or_create_key(dir.path(), "encryption-key").unwrap(),
            (key, false)
        );
    }

    #[cfg(unix)]
    #[test]
    fn generated_keys_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        load_or_create_key(dir.path(), "jwt-secret").unwrap();
        let mode = std::fs::metadata(dir.path().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_empty_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption-key");
        std::fs::write(&path, "").unwrap();
        let error = load_or_create_key(dir.path(), "encryption-key").unwrap_err();
        assert_eq!(error.variable, DATA_DIR);
        assert!(
            error.message.contains(&path.display().to_string()) && error.message.contains("empty"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"", "left as it was");
    }
}
