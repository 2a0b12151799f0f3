//! The span every request runs in, and the one place a failed request is
//! logged. Its fields are what authd itself believes: the route template
//! and path (never the query, which may carry a pasted token), and the
//! client address as resolved through `TRUSTED_PROXIES` (never a forwarding
//! header from an untrusted peer).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, web};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::http::client::TrustedProxies;

pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
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
            status = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("status", status.as_u16());
        // A client's mistake is the client's to see; a fault is ours to log,
        // once, with its cause.
        match (status, error) {
            (StatusCode::SERVICE_UNAVAILABLE, Some(error)) => {
                tracing::warn!(error = %error, "request failed: a dependency is unavailable");
            }
            (status, Some(error)) if status.is_server_error() => {
                tracing::error!(error = %error, "request failed");
            }
            _ => {}
        }
    }
}
