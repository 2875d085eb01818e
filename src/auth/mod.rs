//! The domain: who may get which token, and why. Nothing here knows about
//! HTTP or SQL; storage is reached through `crate::store::Store`.

pub mod audit;
pub mod clock;
pub mod error;
pub mod flow;
pub mod password;
pub mod qr;
pub mod recovery;
pub mod refresh;
pub mod secret_box;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod username;

pub use audit::{ClientInfo, SecurityEvent};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AuthError, FieldError};
pub use flow::Authenticator;
