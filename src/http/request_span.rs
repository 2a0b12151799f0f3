//! The span every request runs in, and its one log line. Its fields are
//! what authd itself believes: the route template and the path (never the
//! query, which may carry a pasted token), and the client address as
//! resolved through `TRUSTED_PROXIES` (never a forwarding header from an
//! untrusted peer).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, web};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::http::client::TrustedProxies;

pub struct RequestSpan;

/// When the request's head reached the app: the start of its duration, and
/// of the time its body has to arrive.
#[derive(Clone, Copy, Debug)]
pub struct Started(pub Instant);

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let client_ip = request
            .app_data::<web::Data<TrustedProxies>>()
            .and_then(|proxies| proxies.client(request.request()).ip)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            path = %request.path(),
            client_ip = %client_ip,
            request_id = %request_id,
        )
    }

    /// One line per request: `info` whatever the client's mistake, `warn`
    /// when a dependency is down, `error` with its cause for a fault.
    fn on_request_end<B: MessageBody>(
        _span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error, started) = match outcome {
            Ok(response) => (
                response.status(),
                response.response().error(),
                response.request().extensions().get::<Started>().copied(),
            ),
            Err(error) => (error.as_response_error().status_code(), Some(error), None),
        };
        let duration_ms = started.map(|Started(at)| at.elapsed().as_secs_f64() * 1000.0);
        let status = status.as_u16();
        match error {
            Some(error) if status == StatusCode::SERVICE_UNAVAILABLE.as_u16() => {
                tracing::warn!(status, duration_ms, error = %error, "request failed: a dependency is unavailable");
            }
            Some(error) if status >= 500 => {
                tracing::error!(status, duration_ms, error = %error, "request failed");
            }
            _ => tracing::info!(status, duration_ms, "request"),
        }
    }
}
