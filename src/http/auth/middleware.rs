//! `login_required`, by placement: a route wrapped with [`login_required`]
//! needs a live session and does no check of its own; its handler takes the user
//! and session from the
//! [`Authenticated`](crate::http::auth::authenticate::Authenticated)
//! extractor. A request without one gets `401` with a `login_url`: the
//! login route, with `next` set to where it was going (Flask-Login's
//! redirect to `login_view`, as JSON).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpRequest, Route, web};

use crate::http::auth::authenticate::{Auth, Authenticated};
use crate::http::error::ApiError;

/// Flask-Login's `@login_required`, for an actix-web route: only a request
/// that a live session presents (by cookie or bearer token, with its CSRF
/// token when a cookie carries an unsafe request) reaches the handler,
/// which reads the caller with the
/// [`Authenticated`](crate::http::auth::authenticate::Authenticated)
/// extractor; any other gets `401` with a `login_url`.
///
/// ```ignore
/// web::resource("/api/index").route(authd::login_required(web::get().to(index)))
/// ```
///
/// It wraps the route rather than its resource or scope, which keeps
/// HTTP's order of checks: an unknown path is 404 and a wrong method is 405
/// with `Allow`, for anonymous callers too, before any 401.
pub fn login_required(route: Route) -> Route {
    route.wrap(from_fn(require_login))
}

/// The live session a request presents, as `login_required` finds it (and
/// names it in the request's span); otherwise `401` with a `login_url`. For
/// a handler that serves logged-in requests and others of its own kind.
pub async fn logged_in(auth: &Auth, request: &HttpRequest) -> Result<Authenticated, ApiError> {
    match auth.authenticate(request).await? {
        Some(authenticated) => {
            // The request's span (the current one) names who made it; the
            // session by its public id, never its credential.
            let span = tracing::Span::current();
            span.record("user_id", authenticated.user.id.get());
            span.record("session", authenticated.session.id.as_str());
            Ok(authenticated)
        }
        None => Err(ApiError::LoginRequired {
            login_url: login_url(request),
        }),
    }
}

/// Where a refused request should log in: the login route, with `next` set
/// to its path and query, percent-encoded.
fn login_url(request: &HttpRequest) -> String {
    let target = match request.query_string() {
        "" => request.path().to_owned(),
        query => format!("{}?{query}", request.path()),
    };
    let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    format!("/api/login?next={next}")
}

async fn require_login(
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
    match logged_in(&auth, request.request()).await {
        Ok(authenticated) => {
            request.extensions_mut().insert(authenticated);
            Ok(next.call(request).await?.map_into_left_body())
        }
        Err(error) => Ok(request.error_response(error).map_into_right_body()),
    }
}
