//! Credentialed CORS for the allowlisted origins only: any other origin gets
//! no CORS headers at all (never a reflection, never `*`).

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

pub fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-csrf-token"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(3600)
}

const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// A preflight's answer, granted or refused, depends on the origin and what
/// it asks for, and is for the browser that asked: no shared cache may keep
/// it or hand it to another origin.
fn mark(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static(PREFLIGHT_VARY));
}

/// Wraps the CORS layer, which answers preflights itself.
pub async fn preflight_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match next.call(request).await {
        Ok(mut response) => {
            if preflight {
                mark(response.headers_mut());
            }
            Ok(response)
        }
        // A refused preflight is an error until the problem+json handler
        // turns it into a response.
        Err(mut error) => {
            if preflight {
                error.add_response_mapper(|mut response| {
                    mark(response.headers_mut());
                    response
                });
            }
            Err(error)
        }
    }
}
