//! The HTTP layer's one error type, and the one place where errors become
//! RFC 9457 `application/problem+json` responses. Service errors convert
//! into it with `From`; logging them is the request span's job.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::domain::{FieldErrors, REQUIRED};
use crate::services::accounts::AccountError;
use crate::services::login::LoginError;
use crate::services::mfa::MfaError;
use crate::services::passkeys::PasskeyError;
use crate::services::passwords::HashError;
use crate::services::recovery::RecoveryError;
use crate::services::throttle::ThrottleError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body must be JSON")]
    UnsupportedMediaType,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the body could not be read")]
    UnreadableBody,
    #[error("the request did not arrive in time")]
    RequestTimeout,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("authentication required")]
    Unauthenticated,
    /// [`Unauthenticated`](Self::Unauthenticated) on a route that needs a
    /// login, with where to log in (and come back).
    #[error("authentication required")]
    LoginRequired { login_url: String },
    /// The right password for an account with a second factor: the login
    /// goes on at `POST /api/login/mfa` with this token.
    #[error("a second factor is required")]
    MfaRequired {
        mfa_token: String,
        /// What the second step accepts, from the account's factors.
        methods: &'static [&'static str],
    },
    /// The right password, under `MFA_REQUIRED`, for an account without a
    /// second factor: it sets one up with this token at `/api/mfa/totp`.
    #[error("a second factor must be set up")]
    MfaEnrollmentRequired { mfa_token: String },
    #[error("the second step's token is not valid")]
    MfaExpired,
    /// A wrong code at the login's second step.
    #[error("the code is wrong")]
    InvalidCode,
    /// A wrong code confirming a sensitive change (step-up).
    #[error("the code is wrong")]
    WrongCode,
    #[error("a second factor is on already")]
    MfaAlreadyEnabled,
    #[error("no second factor is on")]
    MfaNotEnabled,
    /// A passkey refused, whatever the reason (the audit trail has it).
    #[error("the passkey was refused")]
    PasskeyFailed,
    /// No relying party is configured.
    #[error("passkeys are off")]
    PasskeysDisabled,
    #[error("the account is disabled")]
    InactiveAccount,
    /// `REQUIRE_VERIFIED_EMAIL`: `sent` when a new link is on its way.
    #[error("the address is not verified")]
    EmailNotVerified { sent: bool },
    #[error("the link is not valid")]
    InvalidToken,
    #[error("the address is verified already")]
    AlreadyVerified,
    #[error("account recovery is turned off")]
    RecoveryDisabled,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("CSRF token missing or wrong")]
    CsrfFailed,
    #[error("already authenticated")]
    AlreadyAuthenticated,
    #[error("too many attempts")]
    TooManyRequests(Duration),
    #[error("cross-origin request refused")]
    ForeignOrigin,
    #[error("no such route")]
    NotFound,
    #[error("no such session")]
    NoSuchSession,
    /// The account has no passkey with this id (or it is another's).
    #[error("no such passkey")]
    NoSuchPasskey,
    /// A dependency (Postgres, Redis, the blocking pool) is down or
    /// overloaded; the client may retry shortly.
    #[error("a dependency is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// How one error is written on the wire.
struct Problem {
    status: StatusCode,
    /// The last part of the problem type URI, `urn:authd:problem:{kind}`.
    kind: &'static str,
    title: &'static str,
    detail: Cow<'static, str>,
    header: Option<(HeaderName, HeaderValue)>,
}

/// RFC 6750: tell the client which scheme to use.
fn bearer_challenge() -> Option<(HeaderName, HeaderValue)> {
    Some((
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"authd\""),
    ))
}

fn retry_after(wait: Duration) -> Option<(HeaderName, HeaderValue)> {
    Some((
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    ))
}

impl ApiError {
    pub fn field(field: &str, message: &str) -> Self {
        let mut errors = FieldErrors::new();
        crate::domain::add_error(&mut errors, field, message);
        Self::Validation(errors)
    }

    /// The table: per variant, its status, problem type, title, detail and
    /// header.
    fn problem(&self) -> Problem {
        use StatusCode as S;
        let (status, kind, title, detail, header): (_, _, _, Cow<'static, str>, _) = match self {
            Self::Validation(_) => (
                S::UNPROCESSABLE_ENTITY,
                "validation-error",
                "Invalid request",
                "One or more fields are invalid; see `errors`.".into(),
                None,
            ),
            Self::MalformedJson(reason) => (
                S::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("The request body is not valid JSON: {reason}").into(),
                None,
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as JSON with `Content-Type: application/json`.".into(),
                None,
            ),
            Self::PayloadTooLarge(limit) => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!("The request body must be at most {limit} bytes.").into(),
                None,
            ),
            Self::UnreadableBody => (
                S::BAD_REQUEST,
                "unreadable-body",
                "Bad request",
                "The request body could not be read.".into(),
                None,
            ),
            Self::RequestTimeout => (
                S::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                "The request did not arrive in time; the connection is closed.".into(),
                None,
            ),
            Self::InvalidCredentials => (
                S::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid username or password",
                "Invalid username or password".into(),
                bearer_challenge(),
            ),
            Self::Unauthenticated | Self::LoginRequired { .. } => (
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "Log in, then send the session cookie or an `Authorization: Bearer` token.".into(),
                bearer_challenge(),
            ),
            Self::MfaRequired { .. } => (
                S::UNAUTHORIZED,
                "mfa-required",
                "Second factor required",
                "The password is right; send a code from the authenticator app (or a recovery \
                 code), or a passkey, with `mfa_token` to `POST /api/login/mfa`: `methods` \
                 lists what this account has."
                    .into(),
                bearer_challenge(),
            ),
            Self::MfaEnrollmentRequired { .. } => (
                S::UNAUTHORIZED,
                "mfa-enrollment-required",
                "Second factor setup required",
                "The password is right, but every account here needs a second factor: start \
                 one with `mfa_token` at `POST /api/mfa/totp`, then confirm it with a code and \
                 `mfa_token` at `POST /api/mfa/totp/confirm`, which logs you in."
                    .into(),
                bearer_challenge(),
            ),
            Self::MfaExpired => (
                S::UNAUTHORIZED,
                "mfa-expired",
                "Login expired",
                "This second step is not valid: it was used, expired or voided. Log in again."
                    .into(),
                bearer_challenge(),
            ),
            Self::InvalidCode => (
                S::UNAUTHORIZED,
                "invalid-code",
                "Wrong code",
                "The code is wrong, or was used already. Try the current code.".into(),
                bearer_challenge(),
            ),
            Self::WrongCode => (
                S::FORBIDDEN,
                "wrong-code",
                "Wrong code",
                "The code from the second factor is wrong, or was used already.".into(),
                None,
            ),
            Self::MfaAlreadyEnabled => (
                S::CONFLICT,
                "mfa-already-enabled",
                "Second factor already on",
                "This account has a second factor already; turn it off first to enrol another."
                    .into(),
                None,
            ),
            Self::MfaNotEnabled => (
                S::CONFLICT,
                "mfa-not-enabled",
                "No second factor",
                "This account has no second factor.".into(),
                None,
            ),
            Self::InactiveAccount => (
                S::FORBIDDEN,
                "inactive-account",
                "Account disabled",
                "This account has been disabled.".into(),
                None,
            ),
            Self::EmailNotVerified { sent } => (
                S::FORBIDDEN,
                "email-not-verified",
                "E-mail address not verified",
                if *sent {
                    "Confirm your e-mail address first: we have sent you a new link. \
                     Open it, then log in again."
                } else {
                    "Confirm your e-mail address first: open the link we sent you, then \
                     log in again."
                }
                .into(),
                None,
            ),
            Self::InvalidToken => (
                S::BAD_REQUEST,
                "invalid-token",
                "Invalid or expired link",
                "This link is not valid: it may have expired, been used already, or been \
                 replaced by a newer one. Ask for a new one."
                    .into(),
                None,
            ),
            Self::AlreadyVerified => (
                S::CONFLICT,
                "already-verified",
                "Already verified",
                "This account's e-mail address is verified already.".into(),
                None,
            ),
            Self::PasskeyFailed => (
                S::UNAUTHORIZED,
                "passkey-failed",
                "Passkey refused",
                "The passkey could not be verified, or its challenge was used or expired. Start \
                 again."
                    .into(),
                bearer_challenge(),
            ),
            Self::PasskeysDisabled => (
                S::NOT_FOUND,
                "passkeys-disabled",
                "Passkeys are turned off",
                "This server has no WebAuthn relying party (WEBAUTHN_RP_ID) for passkeys.".into(),
                None,
            ),
            Self::RecoveryDisabled => (
                S::NOT_FOUND,
                "recovery-disabled",
                "Account recovery is turned off",
                "This server does not send recovery or verification mails.".into(),
                None,
            ),
            Self::WrongPassword => (
                S::FORBIDDEN,
                "wrong-password",
                "Wrong password",
                "The current password is wrong.".into(),
                None,
            ),
            Self::CsrfFailed => (
                S::FORBIDDEN,
                "csrf-failed",
                "CSRF check failed",
                "Cookie-authenticated requests that change state must send the session's \
                 CSRF token in the `X-CSRF-Token` header."
                    .into(),
                None,
            ),
            Self::AlreadyAuthenticated => (
                S::CONFLICT,
                "already-authenticated",
                "Already authenticated",
                "This request already carries a valid session; log out first.".into(),
                None,
            ),
            Self::TooManyRequests(wait) => (
                S::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many attempts",
                format!(
                    "Too many attempts; try again in {} seconds.",
                    wait.as_secs().max(1)
                )
                .into(),
                retry_after(*wait),
            ),
            Self::ForeignOrigin => (
                S::FORBIDDEN,
                "foreign-origin",
                "Cross-origin request refused",
                "Requests that change state must come from this site or an allowed origin.".into(),
                None,
            ),
            Self::NotFound => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                "There is no such route.".into(),
                None,
            ),
            Self::NoSuchPasskey => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                "You have no passkey with this id.".into(),
                None,
            ),
            Self::NoSuchSession => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                "You have no live session with this id.".into(),
                None,
            ),
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
                "The database is unavailable; try again shortly.".into(),
                retry_after(Duration::from_secs(1)),
            ),
            Self::ShuttingDown => (
                S::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Shutting down",
                "This instance is shutting down; send requests to another.".into(),
                retry_after(Duration::from_secs(1)),
            ),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal server error",
                "An unexpected error occurred.".into(),
                None,
            ),
        };
        Problem {
            status,
            kind,
            title,
            detail,
            header,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => Self::Unavailable(error.into()),
            DbError::Query(_) => Self::Internal(error.into()),
        }
    }
}

impl From<ThrottleError> for ApiError {
    fn from(error: ThrottleError) -> Self {
        match error {
            ThrottleError::Db(error) => error.into(),
            ThrottleError::Redis(_) | ThrottleError::Busy => Self::Unavailable(error.into()),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Cancelled | HashError::Busy(_) => Self::Unavailable(error.into()),
            HashError::Bcrypt(_) | HashError::TooLong => Self::Internal(error.into()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid(errors) => Self::Validation(errors),
            AccountError::Throttled(blocked) => Self::TooManyRequests(blocked.retry_after),
            AccountError::WrongPassword => Self::WrongPassword,
            AccountError::CodeRequired => Self::field("code", REQUIRED),
            AccountError::WrongCode => Self::WrongCode,
            AccountError::Db(error) => error.into(),
            AccountError::Throttle(error) => error.into(),
            AccountError::Hash(error) => error.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials { .. } => Self::InvalidCredentials,
            LoginError::Inactive { .. } => Self::InactiveAccount,
            LoginError::MfaRequired(token, factors) => Self::MfaRequired {
                mfa_token: token.expose().to_owned(),
                methods: match (factors.totp, factors.passkey) {
                    (true, true) => &["totp", "recovery_code", "passkey"],
                    (false, true) => &["passkey"],
                    _ => &["totp", "recovery_code"],
                },
            },
            LoginError::MfaEnrollmentRequired(token) => Self::MfaEnrollmentRequired {
                mfa_token: token.expose().to_owned(),
            },
            LoginError::MfaExpired => Self::MfaExpired,
            LoginError::InvalidCode => Self::InvalidCode,
            LoginError::Unverified { mailed } => Self::EmailNotVerified { sent: mailed },
            LoginError::Throttled(blocked) => Self::TooManyRequests(blocked.retry_after),
            LoginError::Db(error) => error.into(),
            LoginError::Throttle(error) => error.into(),
            LoginError::Hash(error) => error.into(),
            LoginError::Recovery(error) => error.into(),
            LoginError::Mfa(error) => error.into(),
            LoginError::Passkey(error) => error.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(error: PasskeyError) -> Self {
        match error {
            PasskeyError::Off => Self::PasskeysDisabled,
            PasskeyError::Failed(_) => Self::PasskeyFailed,
            PasskeyError::NotFound => Self::NoSuchPasskey,
            PasskeyError::NoPasskey => Self::field(
                "mfa_token",
                "This login's account has no passkey: answer it with a code.",
            ),
            PasskeyError::Throttled(blocked) => Self::TooManyRequests(blocked.retry_after),
            PasskeyError::Confirm(error) => AccountError::from(error).into(),
            PasskeyError::Throttle(error) => error.into(),
            PasskeyError::Db(error) => error.into(),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(error: MfaError) -> Self {
        match error {
            MfaError::AlreadyOn => Self::MfaAlreadyEnabled,
            MfaError::NotOn => Self::MfaNotEnabled,
            MfaError::NotStarted => Self::field(
                "code",
                "No enrolment is pending: start one with POST /api/mfa/totp.",
            ),
            MfaError::WrongCode => Self::field("code", "The code is wrong; try the current one."),
            MfaError::Confirm(error) => AccountError::from(error).into(),
            MfaError::Db(error) => error.into(),
        }
    }
}

impl From<RecoveryError> for ApiError {
    fn from(error: RecoveryError) -> Self {
        match error {
            RecoveryError::Disabled => Self::RecoveryDisabled,
            RecoveryError::InvalidToken => Self::InvalidToken,
            RecoveryError::Throttled(blocked) => Self::TooManyRequests(blocked.retry_after),
            RecoveryError::AlreadyVerified => Self::AlreadyVerified,
            RecoveryError::Db(error) => error.into(),
            RecoveryError::Throttle(error) => error.into(),
            RecoveryError::Hash(error) => error.into(),
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    /// What the second step takes, when one is owed.
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<&'static [&'static str]>,
}

/// The second factors an account can set up when it must.
const ENROLLABLE_METHODS: &[&str] = &["totp"];

/// The members a problem has beyond the standard ones.
#[derive(Default)]
struct Extras<'a> {
    errors: Option<&'a FieldErrors>,
    login_url: Option<&'a str>,
    mfa_token: Option<&'a str>,
    methods: Option<&'static [&'static str]>,
}

fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
    extras: Extras<'_>,
) -> HttpResponse {
    let body = ProblemBody {
        kind: format!("urn:authd:problem:{kind}"),
        title,
        status: status.as_u16(),
        detail,
        errors: extras.errors,
        login_url: extras.login_url,
        mfa_token: extras.mfa_token,
        methods: extras.methods,
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let extras = match self {
            Self::Validation(errors) => Extras {
                errors: Some(errors),
                ..Extras::default()
            },
            Self::LoginRequired { login_url } => Extras {
                login_url: Some(login_url),
                ..Extras::default()
            },
            Self::MfaRequired { mfa_token, methods } => Extras {
                mfa_token: Some(mfa_token),
                methods: Some(methods),
                ..Extras::default()
            },
            Self::MfaEnrollmentRequired { mfa_token } => Extras {
                mfa_token: Some(mfa_token),
                methods: Some(ENROLLABLE_METHODS),
                ..Extras::default()
            },
            _ => Extras::default(),
        };
        let mut response = problem_response(
            problem.status,
            problem.kind,
            problem.title,
            &problem.detail,
            extras,
        );
        if let Some((name, value)) = problem.header {
            response.headers_mut().insert(name, value);
        }
        if problem.status == StatusCode::REQUEST_TIMEOUT {
            // What is left of the body would be read as the next request.
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        response
    }
}

/// Turns any error response that did not come from [`ApiError`] (actix's own
/// 405 with its `Allow` header, for example) into problem+json, keeping its
/// status and headers, so clients only ever parse one error format.
pub fn problem_for_framework_error<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let already_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_JSON.as_bytes());
    if already_problem {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (request, old) = response.into_parts();
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "This route does not accept that method; see `Allow`.",
        _ => title,
    };
    let kind = title.to_ascii_lowercase().replace(' ', "-");
    let mut new = problem_response(status, &kind, title, detail, Extras::default());
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, new).map_into_right_body(),
    ))
}
