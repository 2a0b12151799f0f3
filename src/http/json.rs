//! JSON request bodies: the media type, size and syntax checks every body
//! goes through, and the field-error plumbing for validation.

use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::ValidationErrors;

use crate::domain::{FieldErrors, add_error};
use crate::http::error::ApiError;
use crate::http::request_span::Started;

pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const REQUIRED: &str = "This field is required.";

/// How long a client has for a request, head and body (`CLIENT_TIMEOUT`);
/// registered as app data. The server bounds the head; [`ApiJson`] the body.
#[derive(Clone, Copy, Debug)]
pub struct ClientTimeout(pub Duration);

/// A JSON object body deserialised into `T`. Unlike `web::Json`, every
/// failure is an [`ApiError`] (and so problem+json): 415 for another media
/// type, 413 past 64 KiB, 408 when it does not arrive within
/// `CLIENT_TIMEOUT` of the head, 400 for broken JSON, 422 for wrong field
/// types.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = is_json(request).then(|| read(request, payload));
        Box::pin(async move {
            let bytes = body.ok_or(ApiError::UnsupportedMediaType)?.await?;
            parse(&bytes).map(ApiJson)
        })
    }
}

/// An optional JSON object body: `None` when the request sends none (or
/// only blanks). JSON is also read from `text/plain`, which is what a
/// `sendBeacon` with a string sends; a body of any other type is `415`,
/// so that a request never quietly does less than it asked for.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let readable = is_json(request) || is_plain_text(request);
        let body = read(request, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(None));
            }
            if !readable {
                return Err(ApiError::UnsupportedMediaType);
            }
            parse(&bytes).map(|value| Self(Some(value)))
        })
    }
}

fn is_plain_text(request: &HttpRequest) -> bool {
    matches!(
        request.mime_type(),
        Ok(Some(mime)) if mime.type_() == "text" && mime.subtype() == "plain"
    )
}

fn is_json(request: &HttpRequest) -> bool {
    matches!(
        request.mime_type(),
        Ok(Some(mime)) if mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
    )
}

/// The body, within its size limit and its deadline.
fn read(
    request: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let body = web::Bytes::from_request(request, payload);
    let deadline = body_deadline(request);
    async move {
        let left = deadline.saturating_duration_since(Instant::now());
        actix_web::rt::time::timeout(left, body)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|error| {
                if error.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::UnreadableBody
                }
            })
    }
}

/// A JSON object as `T`; a field of the wrong type names itself.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::field("body", "The body must be a JSON object."));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        ApiError::field(&field, &format!("Invalid value: {}.", error.inner()))
    })
}

/// The value of a field the request must send, non-empty; `None` (and the
/// message noted) when it is missing or empty.
pub fn required<'a>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&'a str>,
) -> Option<&'a str> {
    match value {
        Some(value) if !value.is_empty() => Some(value),
        _ => {
            add_error(errors, field, REQUIRED);
            None
        }
    }
}

/// Notes on the confirming field when it differs from the one it confirms
/// (each `(name, value)`). An empty one is left to [`required`].
pub fn confirm(
    errors: &mut FieldErrors,
    (field, again): (&str, Option<&str>),
    (of, first): (&str, Option<&str>),
) {
    if let (Some(first), Some(again)) = (first, again)
        && first != again
    {
        add_error(errors, field, &format!("Field must be equal to {of}."));
    }
}

/// When the body must have arrived: `CLIENT_TIMEOUT` after the head.
fn body_deadline(request: &HttpRequest) -> Instant {
    let timeout = request
        .app_data::<web::Data<ClientTimeout>>()
        .map_or(Duration::from_secs(10), |timeout| timeout.0);
    let started = request
        .extensions()
        .get::<Started>()
        .map_or_else(Instant::now, |started| started.0);
    started + timeout
}

/// validator's report as field name to messages. A missing field reports
/// only that it is required, not also every rule it therefore fails.
pub fn field_errors(report: Result<(), ValidationErrors>) -> FieldErrors {
    let Err(report) = report else {
        return FieldErrors::new();
    };
    report
        .field_errors()
        .into_iter()
        .map(|(field, errors)| {
            let mut messages: Vec<String> = errors
                .iter()
                .map(|error| {
                    error
                        .message
                        .as_deref()
                        .unwrap_or("Invalid value.")
                        .to_owned()
                })
                .collect();
            if messages.iter().any(|message| message == REQUIRED) {
                messages.retain(|message| message == REQUIRED);
            }
            (field.into_owned(), messages)
        })
        .collect()
}

/// Parses a present field into its domain type, noting the message if it
/// fails. Absent fields are left to validator's `required` rule.
pub fn parse_field<T>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Option<T> {
    match parse(value?) {
        Ok(parsed) => Some(parsed),
        Err(message) => {
            add_error(errors, field, message);
            None
        }
    }
}
