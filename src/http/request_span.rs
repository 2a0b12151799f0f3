//! The span every request runs in, its id, and its one log line.
//!
//! The span's fields are what authd itself believes: the route template
//! and the path (never the query, which may carry a pasted token), and the
//! client address as resolved through `TRUSTED_PROXIES` (never a forwarding
//! header from an untrusted peer). The request id is the caller's
//! `X-Request-Id` when it is a sane one (so a trace crosses services), else
//! made here; either way it is echoed in the response.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use metrics::{Counter, Histogram};
use rand::RngCore;
use tracing::Instrument;

use crate::crypto::hex;
use crate::http::client::TrustedProxies;
use crate::http::error::ApiError;
use crate::http::routes::Draining;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// When the request's head reached the app: the start of its duration, and
/// of the time its body has to arrive.
#[derive(Clone, Copy, Debug)]
pub struct Started(pub Instant);

/// The caller's id if it is 1 to 128 characters of `A-Za-z0-9._:-`, else a
/// new one (128 random bits).
fn request_id(request: &ServiceRequest) -> HeaderValue {
    let given = request.headers().get(&REQUEST_ID).filter(|value| {
        (1..=128).contains(&value.len())
            && value
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
    });
    if let Some(given) = given {
        return given.clone();
    }
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    HeaderValue::from_str(&hex(&bytes)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Runs the request in its span and logs it once: `info` whatever the
/// client's mistake, `warn` when a dependency is down, `error` with its
/// cause for a fault.
pub async fn request_span(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    request.extensions_mut().insert(Started(started));
    let _in_flight = request
        .app_data::<web::Data<Draining>>()
        .and_then(|draining| draining.clone().into_inner().track());
    let id = request_id(&request);
    let client_ip = request
        .app_data::<web::Data<TrustedProxies>>()
        .and_then(|proxies| proxies.client(request.request()).ip);
    let method = request.method().clone();
    let route = request.match_pattern().unwrap_or_else(|| "default".into());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = route.as_str(),
        path = request.path(),
        client_ip = client_ip.map(tracing::field::display),
        request_id = id.to_str().unwrap_or_default(),
        user_id = tracing::field::Empty,
        session = tracing::field::Empty,
    );
    let outcome = next.call(request).instrument(span.clone()).await;
    let _entered = span.enter();
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64();
    let duration_ms = milliseconds(elapsed);
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    record(method_label(&method), &route, status, seconds);
    match outcome {
        Ok(mut response) => {
            // Draining is the plan, not a failure.
            let error = response
                .response()
                .error()
                .filter(|error| !matches!(error.as_error(), Some(ApiError::ShuttingDown)))
                .map(ToString::to_string);
            log(status, error, duration_ms);
            response.headers_mut().insert(REQUEST_ID, id);
            Ok(response)
        }
        Err(mut error) => {
            log(status, Some(error.to_string()), duration_ms);
            error.add_response_mapper(move |mut response| {
                response.headers_mut().insert(REQUEST_ID, id.clone());
                response
            });
            Err(error)
        }
    }
}

/// The request metrics of one method and route template.
struct RouteMetrics {
    duration: Histogram,
    /// By status, in the order they came.
    requests: Vec<(StatusCode, Counter)>,
}

thread_local! {
    /// Each worker's handles to the request metrics, by route template and
    /// method, each resolved from its labels once. Resolving them on every
    /// request (building the key, allocating its strings, hashing it and
    /// finding it in the registry) cost about 2 % of a cached `me`'s CPU.
    /// Bounded as the labels are: templates, methods and statuses are
    /// authd's own.
    static REQUEST_METRICS: RefCell<HashMap<String, HashMap<&'static str, RouteMetrics>>> =
        RefCell::default();
}

/// Counts the request and records its duration.
fn record(method: &'static str, route: &str, status: StatusCode, seconds: f64) {
    REQUEST_METRICS.with_borrow_mut(|routes| {
        // Looked up by `&str` first: the key is allocated once per route.
        let methods = match routes.get_mut(route) {
            Some(methods) => methods,
            None => routes.entry(route.to_owned()).or_default(),
        };
        let metrics = methods.entry(method).or_insert_with(|| RouteMetrics {
            duration: metrics::histogram!(
                "authd_http_request_duration_seconds",
                "method" => method,
                "route" => route.to_owned()
            ),
            requests: Vec::new(),
        });
        metrics.duration.record(seconds);
        match metrics.requests.iter().find(|(seen, _)| *seen == status) {
            Some((_, requests)) => requests.increment(1),
            None => {
                let requests = metrics::counter!(
                    "authd_http_requests_total",
                    "method" => method,
                    "route" => route.to_owned(),
                    "status" => status.as_str().to_owned()
                );
                requests.increment(1);
                metrics.requests.push((status, requests));
            }
        }
    });
}

/// A duration for the log, in milliseconds to the microsecond: `3.851`,
/// not the binary fraction's `3.8514880000000002`.
fn milliseconds(elapsed: Duration) -> f64 {
    elapsed.as_micros() as f64 / 1000.0
}

fn log(status: StatusCode, error: Option<String>, duration_ms: f64) {
    let code = status.as_u16();
    match error {
        Some(error) if status == StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(
                status = code,
                duration_ms,
                error,
                "request failed: a dependency is unavailable"
            );
        }
        Some(error) if status.is_server_error() => {
            tracing::error!(status = code, duration_ms, error, "request failed");
        }
        _ => tracing::info!(status = code, duration_ms, "request"),
    }
}

/// The method as a metric label: actix accepts any token as a method, and
/// each new label value would be a series kept for good, so a client could
/// grow the metrics without bound. Methods authd serves, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_logged_to_the_microsecond() {
        for (nanos, shown) in [
            (3_851_488, "3.851"),
            (7_781, "0.007"),
            (999, "0.0"),
            (2_000_000_000, "2000.0"),
        ] {
            let logged = milliseconds(Duration::from_nanos(nanos));
            assert_eq!(format!("{logged:?}"), shown, "{nanos} ns");
        }
    }
}
