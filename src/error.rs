//! The HTTP layer's one error type, and the one place where errors become
//! RFC 9457 `application/problem+json` responses.

use std::collections::BTreeMap;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Field name to every message about it, in a stable order.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

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
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("authentication required")]
    Unauthenticated,
    #[error("the account is disabled")]
    InactiveAccount,
    #[error("CSRF token missing or wrong")]
    CsrfFailed,
    #[error("already authenticated")]
    AlreadyAuthenticated,
    #[error("too many attempts")]
    TooManyRequests(std::time::Duration),
    #[error("cross-origin request refused")]
    ForeignOrigin,
    #[error("no such route")]
    NotFound,
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: &str) -> Self {
        Self::Validation(FieldErrors::from([(
            field.to_owned(),
            vec![message.to_owned()],
        )]))
    }

    /// `(type, title, detail)` as written in the problem document.
    fn describe(&self) -> (&'static str, &'static str, String) {
        match self {
            Self::Validation(_) => (
                "validation-error",
                "Invalid request",
                "One or more fields are invalid; see `errors`.".into(),
            ),
            Self::MalformedJson(reason) => (
                "malformed-json",
                "Malformed JSON",
                format!("The request body is not valid JSON: {reason}"),
            ),
            Self::UnsupportedMediaType => (
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as JSON with `Content-Type: application/json`.".into(),
            ),
            Self::PayloadTooLarge(limit) => (
                "payload-too-large",
                "Payload too large",
                format!("The request body must be at most {limit} bytes."),
            ),
            Self::UnreadableBody => (
                "unreadable-body",
                "Bad request",
                "The request body could not be read.".into(),
            ),
            Self::InvalidCredentials => (
                "invalid-credentials",
                "Invalid username or password",
                "Invalid username or password".into(),
            ),
            Self::Unauthenticated => (
                "unauthenticated",
                "Authentication required",
                "Log in, then send the session cookie or an `Authorization: Bearer` token.".into(),
            ),
            Self::InactiveAccount => (
                "inactive-account",
                "Account disabled",
                "This account has been disabled.".into(),
            ),
            Self::CsrfFailed => (
                "csrf-failed",
                "CSRF check failed",
                "Cookie-authenticated requests that change state must send the session's \
                 CSRF token in the `X-CSRF-Token` header."
                    .into(),
            ),
            Self::AlreadyAuthenticated => (
                "already-authenticated",
                "Already authenticated",
                "This request already carries a valid session; log out first.".into(),
            ),
            Self::TooManyRequests(wait) => (
                "too-many-requests",
                "Too many attempts",
                format!(
                    "Too many attempts; try again in {} seconds.",
                    wait.as_secs().max(1)
                ),
            ),
            Self::ForeignOrigin => (
                "foreign-origin",
                "Cross-origin request refused",
                "Requests that change state with the session cookie must come from this \
                 site or an allowed origin."
                    .into(),
            ),
            Self::NotFound => ("not-found", "Not found", "There is no such route.".into()),
            Self::Unavailable(_) => (
                "service-unavailable",
                "Service unavailable",
                "The database is unavailable; try again shortly.".into(),
            ),
            Self::Internal(_) => (
                "internal-error",
                "Internal server error",
                "An unexpected error occurred.".into(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable(error),
            StoreError::Query(error) => Self::Internal(error.into()),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
}

fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
    errors: Option<&FieldErrors>,
) -> HttpResponse {
    let body = Problem {
        kind: format!("urn:authd:problem:{kind}"),
        title,
        status: status.as_u16(),
        detail,
        errors,
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidCredentials | Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InactiveAccount | Self::CsrfFailed | Self::ForeignOrigin => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::AlreadyAuthenticated => StatusCode::CONFLICT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(source) => tracing::warn!(error = %source, "database unavailable"),
            Self::Internal(source) => tracing::error!(error = ?source, "internal error"),
            _ => {}
        }
        let (kind, title, detail) = self.describe();
        let errors = match self {
            Self::Validation(errors) => Some(errors),
            _ => None,
        };
        let mut response = problem_response(self.status_code(), kind, title, &detail, errors);
        let headers = response.headers_mut();
        match self {
            // RFC 6750: tell the client which scheme to use.
            Self::Unauthenticated | Self::InvalidCredentials => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"authd\""),
                );
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyRequests(wait) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
            }
            _ => {}
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
    let mut new = problem_response(status, &kind, title, detail, None);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, new).map_into_right_body(),
    ))
}
