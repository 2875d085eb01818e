//! The domain's one error type; the HTTP layer maps each variant to one
//! status and one stable code (`http::problem`).

/// Any error, kept with its chain of causes for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One invalid input field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way an authentication step can fail.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("username taken")]
    UsernameTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid token")]
    InvalidToken,
    #[error("second factor required")]
    TwoFactorRequired,
    #[error("two-factor already enabled")]
    TwoFactorAlreadyEnabled,
    #[error("two-factor setup required")]
    TwoFactorSetupRequired,
    #[error("invalid one-time code")]
    InvalidOtp,
    #[error("invalid recovery code")]
    InvalidRecoveryCode,
    #[error("not found")]
    NotFound,
    #[error("authenticator name taken")]
    AuthenticatorNameTaken,
    #[error("too many authenticators")]
    TooManyAuthenticators,
    #[error("the last authenticator cannot be removed")]
    LastAuthenticator,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: i64 },
    /// The database does not answer: the client may retry later.
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AuthError {
    /// An internal error caused by `cause` (an error, or a message).
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(cause.into())
    }
}

/// `error` and its causes, outermost first, joined by ": " (for logs).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
