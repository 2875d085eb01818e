//! The domain, pure: usernames and passwords (normalisation, validation,
//! bcrypt), TOTP, recovery codes, JWTs and refresh tokens, encryption of
//! secrets at rest, throttling rules and the security log's vocabulary.
//! Nothing here knows HTTP, SQL or persistence: the service (`crate::service`)
//! applies these rules inside its transactions.

pub mod authenticator;
pub mod clock;
pub mod error;
pub mod keyed_hash;
pub mod opaque_token;
pub mod password;
pub mod qr;
pub mod recovery;
pub mod secret_box;
pub mod security_log;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod username;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AuthError, FieldError};
pub use security_log::{ClientInfo, EventKind};
