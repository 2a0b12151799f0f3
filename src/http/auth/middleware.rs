//! `login_required`, by placement: a route mounted with [`protected`] needs
//! a live session and does no check of its own; its handler takes the user
//! and session from the
//! [`Authenticated`](crate::http::auth::authenticate::Authenticated)
//! extractor.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, Route, web};

use crate::http::auth::authenticate::Auth;
use crate::http::error::ApiError;

/// Puts [`login_required`] between a route's method match and its handler.
/// Wrapping routes rather than their scope keeps HTTP's order of checks: an
/// unknown path is 404 and a wrong method is 405 with `Allow`, for anonymous
/// callers too, before any 401.
pub fn protected(route: Route) -> Route {
    route.wrap(from_fn(login_required))
}

pub async fn login_required(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // CORS preflights carry no credentials.
    if request.method() == Method::OPTIONS {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let auth = request
        .app_data::<web::Data<Auth>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("Auth is not registered")))?;
    // Refusals are responses, not errors, so that the layers outside
    // (default headers, logging) treat them like any other response.
    match auth.authenticate(request.request()).await {
        Ok(Some(authenticated)) => {
            // The request's span (the current one) names who made it; the
            // session by its public id, never its credential.
            let span = tracing::Span::current();
            span.record("user_id", authenticated.user.id.get());
            span.record("session", authenticated.session.id.as_str());
            request.extensions_mut().insert(authenticated);
            Ok(next.call(request).await?.map_into_left_body())
        }
        Ok(None) => Ok(request
            .error_response(ApiError::Unauthenticated)
            .map_into_right_body()),
        Err(error) => Ok(request.error_response(error).map_into_right_body()),
    }
}
