//! JSON request bodies: the media type, size and syntax checks every body
//! goes through, and the one way their fields are validated ([`check`]).

use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::domain::FieldErrors;
use crate::http::error::ApiError;
use crate::http::request_span::Started;

pub const MAX_BODY_BYTES: usize = 64 * 1024;
use crate::domain::REQUIRED;

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
    let Unique(value) = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::field("body", "The body must be a JSON object."));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        ApiError::field(&field, &format!("Invalid value: {}.", error.inner()))
    })
}

/// A text field as sent, with a missing one or `null` read as empty: the
/// `length(min = 1)` rule then reports it as required (see [`check`]).
pub fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A JSON value whose objects name no key twice. serde_json would keep
/// the last of two; but a proxy, a WAF or a log in front of authd may read
/// the first, so a body that two parsers could read apart is refused.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unique(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            object.insert(key, value);
        }
        Ok(object.into())
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

/// What a body's validator rules find, as field name to messages (empty
/// when it passes): the first step of every handler that reads a body.
///
/// One convention for every route, so that one mistake reads the same
/// everywhere: a text field the request must send is a `String` read with
/// `#[serde(default, deserialize_with = "text")]` and checked with
/// `length(min = 1, message = "This field is required.")` (missing, `null`
/// and empty are one mistake), and a field that repeats another has
/// `must_match(other = "…", message = "Field must be equal to ….")`. What is
/// left (a username's alphabet, a password's policy) is the domain
/// types' to parse, noted beside these with
/// [`parse_field`](crate::domain::parse_field). A missing field reports
/// only that it is required, not also every rule it therefore fails.
pub fn check<T: Validate>(body: &T) -> FieldErrors {
    let Err(report) = body.validate() else {
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
