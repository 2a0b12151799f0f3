//! JSON request bodies: the media type, size and syntax checks every body
//! goes through, and the field-error plumbing for validation.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::ValidationErrors;

use crate::domain::{FieldErrors, add_error};
use crate::http::error::ApiError;

pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const REQUIRED: &str = "This field is required.";

/// A JSON object body deserialised into `T`. Unlike `web::Json`, every
/// failure is an [`ApiError`] (and so problem+json): 415 for another media
/// type, 413 past 64 KiB, 400 for broken JSON, 422 for wrong field types.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = matches!(
            request.mime_type(),
            Ok(Some(mime)) if mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        );
        let body = is_json.then(|| web::Bytes::from_request(request, payload));
        Box::pin(async move {
            let bytes = body
                .ok_or(ApiError::UnsupportedMediaType)?
                .await
                .map_err(|error| {
                    if error.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge(MAX_BODY_BYTES)
                    } else {
                        ApiError::UnreadableBody
                    }
                })?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
            if !value.is_object() {
                return Err(ApiError::field("body", "The body must be a JSON object."));
            }
            serde_path_to_error::deserialize(value)
                .map(ApiJson)
                .map_err(|error| {
                    let field = error.path().to_string();
                    ApiError::field(&field, &format!("Invalid value: {}.", error.inner()))
                })
        })
    }
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
