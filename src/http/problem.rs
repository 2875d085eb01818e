//! RFC 9457 problem details: the one place where errors become HTTP.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::body_limit_in_kib;
use super::openapi::validation_failed_example;
use crate::auth::error::error_chain;
use crate::auth::{AuthError, FieldError};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable, machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    InvalidToken,
    TwoFactorRequired,
    InvalidCredentials,
    UsernameTaken,
    TwoFactorAlreadyEnabled,
    TwoFactorSetupRequired,
    InvalidOtp,
    InvalidRecoveryCode,
    AuthenticatorNameTaken,
    TooManyAuthenticators,
    LastAuthenticator,
    TooManyAttempts,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::ValidationFailed => "validation_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidToken => "invalid_token",
            Self::TwoFactorRequired => "two_factor_required",
            Self::InvalidCredentials => "invalid_credentials",
            Self::UsernameTaken => "username_taken",
            Self::TwoFactorAlreadyEnabled => "two_factor_already_enabled",
            Self::TwoFactorSetupRequired => "two_factor_setup_required",
            Self::InvalidOtp => "invalid_otp",
            Self::InvalidRecoveryCode => "invalid_recovery_code",
            Self::AuthenticatorNameTaken => "authenticator_name_taken",
            Self::TooManyAuthenticators => "too_many_authenticators",
            Self::LastAuthenticator => "last_authenticator",
            Self::TooManyAttempts => "too_many_attempts",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidToken
            | Self::InvalidCredentials
            | Self::InvalidOtp
            | Self::InvalidRecoveryCode => StatusCode::UNAUTHORIZED,
            Self::TwoFactorRequired => StatusCode::FORBIDDEN,
            Self::UsernameTaken
            | Self::TwoFactorAlreadyEnabled
            | Self::TwoFactorSetupRequired
            | Self::AuthenticatorNameTaken
            | Self::TooManyAuthenticators
            | Self::LastAuthenticator => StatusCode::CONFLICT,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn default_detail(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::BadRequest => "The request could not be read.",
            Self::ValidationFailed => "One or more fields are invalid.",
            Self::PayloadTooLarge => {
                return format!("The request body is larger than {}.", body_limit_in_kib()).into();
            }
            Self::UnsupportedMediaType => "Send the body as application/json.",
            Self::NotFound => "There is nothing at this path.",
            Self::MethodNotAllowed => "This path does not accept that method.",
            Self::InvalidToken => "The bearer token is missing, invalid, expired or revoked.",
            Self::TwoFactorRequired => {
                "This needs an access token; complete the second factor first."
            }
            Self::InvalidCredentials => "The username or password is incorrect.",
            Self::UsernameTaken => "That username is already registered.",
            Self::TwoFactorAlreadyEnabled => "Two-factor authentication is already enabled.",
            Self::TwoFactorSetupRequired => "Call /api/v1/2fa/setup before verifying a code.",
            Self::InvalidOtp => "The one-time code is incorrect or was already used.",
            Self::InvalidRecoveryCode => "The recovery code is incorrect or was already used.",
            Self::AuthenticatorNameTaken => "You already have an authenticator of that name.",
            Self::TooManyAuthenticators => {
                "You have as many authenticators as allowed; remove one first."
            }
            Self::LastAuthenticator => {
                "This is your only authenticator; turn two-factor off with /api/v1/2fa/disable instead."
            }
            Self::TooManyAttempts => "Too many attempts; retry after the time in Retry-After.",
            Self::ServiceUnavailable => "The service is temporarily unavailable.",
            Self::Internal => "An internal error occurred.",
        })
    }

    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::TooManyAttempts,
            401 => Self::InvalidToken,
            503 => Self::ServiceUnavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!(validation_failed_example("password", "must be 8 to 128 characters long")))]
pub struct Problem {
    /// Always `about:blank`: `code` carries the specific error.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: &'static str,
    /// The HTTP reason phrase of `status`.
    #[schema(example = "Unprocessable Entity")]
    pub title: &'static str,
    /// The HTTP status code, repeated.
    #[schema(minimum = 400, maximum = 599, example = 422)]
    pub status: u16,
    /// A human-readable explanation; never leaks internal details.
    #[schema(example = "One or more fields are invalid.")]
    pub detail: String,
    /// Stable, machine-readable error code: `bad_request`,
    /// `validation_failed`, `payload_too_large`, `unsupported_media_type`,
    /// `not_found`, `method_not_allowed`, `invalid_token`,
    /// `two_factor_required`, `invalid_credentials`, `username_taken`,
    /// `two_factor_already_enabled`, `two_factor_setup_required`,
    /// `invalid_otp`, `invalid_recovery_code`, `authenticator_name_taken`,
    /// `too_many_authenticators`, `last_authenticator`, `too_many_attempts`,
    /// `service_unavailable` or `internal`. New codes may be added: treat an
    /// unknown one by its `status`.
    #[schema(example = "validation_failed")]
    pub code: &'static str,
    /// Present only when `code` is `validation_failed`: one entry per
    /// invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldProblem>>,
}

/// One invalid field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The JSON field name (`body` for the body as a whole).
    #[schema(example = "password")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must be 8 to 128 characters long")]
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: Option<String>,
    errors: Vec<FieldError>,
    /// For 405: the methods the path does accept.
    allow: Option<String>,
    /// For 401: whether a token was presented (RFC 6750 section 3).
    token_presented: bool,
    /// For 429: seconds until a retry may succeed.
    retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            errors: Vec::new(),
            allow: None,
            token_presented: true,
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(ErrorCode::ValidationFailed)
        }
    }

    pub fn missing_token() -> Self {
        Self {
            token_presented: false,
            ..Self::new(ErrorCode::InvalidToken)
        }
    }

    pub fn method_not_allowed(allow: String) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(ErrorCode::MethodNotAllowed)
        }
    }

    /// The problem document this error answers with.
    pub fn problem(&self) -> Problem {
        let status = self.code.status();
        Problem {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self
                .detail
                .clone()
                .unwrap_or_else(|| self.code.default_detail().into_owned()),
            code: self.code.as_str(),
            errors: (self.code == ErrorCode::ValidationFailed).then(|| {
                self.errors
                    .iter()
                    .map(|e| FieldProblem {
                        field: e.field.clone(),
                        message: e.message.clone(),
                    })
                    .collect()
            }),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code.as_str())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::UsernameTaken => Self::new(ErrorCode::UsernameTaken),
            AuthError::InvalidCredentials => Self::new(ErrorCode::InvalidCredentials),
            AuthError::InvalidToken => Self::new(ErrorCode::InvalidToken),
            AuthError::TwoFactorRequired => Self::new(ErrorCode::TwoFactorRequired),
            AuthError::TwoFactorAlreadyEnabled => Self::new(ErrorCode::TwoFactorAlreadyEnabled),
            AuthError::TwoFactorSetupRequired => Self::new(ErrorCode::TwoFactorSetupRequired),
            AuthError::InvalidOtp => Self::new(ErrorCode::InvalidOtp),
            AuthError::InvalidRecoveryCode => Self::new(ErrorCode::InvalidRecoveryCode),
            AuthError::NotFound => Self::new(ErrorCode::NotFound),
            AuthError::AuthenticatorNameTaken => Self::new(ErrorCode::AuthenticatorNameTaken),
            AuthError::TooManyAuthenticators => Self::new(ErrorCode::TooManyAuthenticators),
            AuthError::LastAuthenticator => Self::new(ErrorCode::LastAuthenticator),
            AuthError::TooManyAttempts { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs.max(1)),
                ..Self::new(ErrorCode::TooManyAttempts)
            },
            AuthError::Unavailable(_) => {
                tracing::warn!(error = %error_chain(&error), "database unavailable");
                Self::new(ErrorCode::ServiceUnavailable)
            }
            AuthError::Internal(_) => {
                tracing::error!(error = %error_chain(&error), "internal error");
                Self::new(ErrorCode::Internal)
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self.code {
            ErrorCode::InvalidToken if self.token_presented => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="otpgate", error="invalid_token""#,
                ));
            }
            ErrorCode::InvalidToken => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="otpgate""#));
            }
            ErrorCode::TwoFactorRequired => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="otpgate", error="insufficient_scope", error_description="second factor required""#,
                ));
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        response.body(body)
    }
}
