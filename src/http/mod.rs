//! The HTTP layer: the route table, the middleware around it, extractors,
//! and the one error type every failure becomes. It calls the services;
//! nothing below it knows about HTTP.

pub mod auth;
pub mod client;
pub mod cors;
pub mod error;
pub mod json;
pub mod metrics;
pub mod request_span;
pub mod routes;
pub mod security_headers;

use actix_identity::IdentityMiddleware;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, FromRequest, Handler, Resource, Responder, Route, web};

use crate::db::PgPool;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::{CookiePolicy, accept_previous_key, persist_remembered};
use crate::http::auth::middleware::protected;
use crate::http::auth::origin::{OriginPolicy, refuse_foreign_origins};
use crate::http::client::TrustedProxies;
use crate::http::cors::{cors, preflight_headers};
use crate::http::error::problem_for_framework_error;
use crate::http::json::ClientTimeout;
use crate::http::request_span::request_span;
use crate::http::security_headers::security_headers;
use crate::services::accounts::Accounts;
use crate::services::login::Login;
use crate::services::recovery::Recovery;

/// What the HTTP layer is built from. Each part is registered as app data
/// of its own, so a handler, extractor or middleware asks for exactly the
/// part it uses.
#[derive(Clone)]
pub struct Parts {
    pub accounts: web::Data<Accounts>,
    pub login: web::Data<Login>,
    pub recovery: web::Data<Recovery>,
    pub auth: web::Data<Auth>,
    pub cookies: web::Data<CookiePolicy>,
    pub origins: web::Data<OriginPolicy>,
    pub timeout: web::Data<ClientTimeout>,
    pub draining: web::Data<routes::Draining>,
    pub proxies: web::Data<TrustedProxies>,
    pub pool: web::Data<PgPool>,
}

/// The whole HTTP surface: middleware and routes. A new route is a line in
/// the `/api` scope below, a handler in [`routes`], and an operation in
/// `openapi.yaml`.
pub fn app(
    parts: Parts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let session = parts.cookies.session_middleware();
    let cors = cors(&parts.origins.cors_origins);
    App::new()
        .app_data(parts.accounts)
        .app_data(parts.login)
        .app_data(parts.recovery)
        .app_data(parts.auth)
        .app_data(parts.cookies)
        .app_data(parts.origins)
        .app_data(parts.timeout)
        .app_data(parts.draining)
        .app_data(parts.proxies)
        .app_data(parts.pool)
        .app_data(web::PayloadConfig::new(json::MAX_BODY_BYTES))
        // Listed innermost first: identity needs the session; a cookie sealed
        // with the previous key is re-sealed before the session reads it;
        // the remember-me rewrite needs the session's cookie; a foreign
        // origin's unsafe request is refused before any of that; CORS
        // answers preflights before that; every error (CORS refusals too)
        // passes through the problem+json handler before the request span
        // records it; and every response, errors included, gets the
        // security headers.
        .wrap(IdentityMiddleware::default())
        .wrap(session)
        .wrap(from_fn(accept_previous_key))
        .wrap(from_fn(persist_remembered))
        .wrap(from_fn(refuse_foreign_origins))
        .wrap(cors)
        .wrap(from_fn(preflight_headers))
        .wrap(ErrorHandlers::new().default_handler(problem_for_framework_error))
        .wrap(from_fn(request_span))
        .wrap(from_fn(security_headers))
        .service(readable("/healthz", routes::healthz, public))
        .service(readable("/readyz", routes::readyz, public))
        .service(
            web::scope("/api")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")))
                .service(web::resource("/register").route(web::post().to(routes::register)))
                .service(web::resource("/login").route(web::post().to(routes::login)))
                .service(web::resource("/logout").route(web::post().to(routes::logout)))
                .service(readable("/openapi.yaml", routes::openapi, public))
                .service(readable("/auth/check", routes::auth_check, public))
                .service(
                    readable("/me", routes::me, protected)
                        .route(protected(web::patch().to(routes::update_me)))
                        .route(protected(web::delete().to(routes::delete_me))),
                )
                .service(
                    web::resource("/me/password")
                        .route(protected(web::post().to(routes::change_password))),
                )
                .service(readable("/sessions", routes::list_sessions, protected))
                .service(
                    web::resource("/sessions/{id}")
                        .route(protected(web::delete().to(routes::end_session))),
                )
                .service(
                    web::resource("/password/forgot")
                        .route(web::post().to(routes::forgot_password)),
                )
                .service(
                    web::resource("/password/reset").route(web::post().to(routes::reset_password)),
                )
                .service(web::resource("/email/verify").route(web::post().to(routes::verify_email)))
                .service(
                    web::resource("/email/verify/resend")
                        .route(protected(web::post().to(routes::resend_verification))),
                ),
        )
        .default_service(web::to(routes::not_found))
}

/// A resource read with GET, and with HEAD, which answers the same status
/// and headers without the body (the server leaves it out).
fn readable<F, Args>(path: &str, handler: F, access: fn(Route) -> Route) -> Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(access(web::get().to(handler.clone())))
        .route(access(web::head().to(handler)))
}

/// Open to anyone: the route as it is.
fn public(route: Route) -> Route {
    route
}
