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
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, FromRequest, Handler, Resource, Responder, Route, web};

use crate::db::PgPool;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::{CookiePolicy, accept_previous_key, persist_remembered};
use crate::http::auth::middleware::login_required;
use crate::http::auth::origin::{OriginPolicy, refuse_foreign_origins};
use crate::http::client::TrustedProxies;
use crate::http::cors::{cors, preflight_headers};
use crate::http::error::problem_for_framework_error;
use crate::http::json::ClientTimeout;
use crate::http::request_span::request_span;
use crate::http::security_headers::security_headers;
use crate::services::accounts::Accounts;
use crate::services::login::Login;
use crate::services::mfa::Mfa;
use crate::services::passkeys::Passkeys;
use crate::services::recovery::Recovery;

/// What the HTTP layer is built from. Each part is registered as app data
/// of its own, so a handler, extractor or middleware asks for exactly the
/// part it uses. [`HttpParts::app`] makes an actix-web `App` of them (one per
/// server worker).
#[derive(Clone)]
pub struct HttpParts {
    pub accounts: web::Data<Accounts>,
    pub login: web::Data<Login>,
    pub mfa: web::Data<Mfa>,
    pub passkeys: web::Data<Passkeys>,
    pub recovery: web::Data<Recovery>,
    pub auth: web::Data<Auth>,
    pub cookies: web::Data<CookiePolicy>,
    pub origins: web::Data<OriginPolicy>,
    pub timeout: web::Data<ClientTimeout>,
    pub draining: web::Data<routes::Draining>,
    pub proxies: web::Data<TrustedProxies>,
    pub pool: web::Data<PgPool>,
}

impl HttpParts {
    /// The whole HTTP surface: middleware and routes. A new route is a
    /// line in `app` below, a handler in `routes`, and an operation in
    /// `openapi.yaml`. `routes` adds an embedding application's own (none
    /// for `authd serve`): they get the same error format, origin and CSRF
    /// checks, and headers as authd's.
    pub fn app<R: FnOnce(&mut web::ServiceConfig)>(
        &self,
        routes: R,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody + use<R>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<R>,
    > {
        app(self.clone(), routes)
    }
}

fn app(
    parts: HttpParts,
    routes: impl FnOnce(&mut web::ServiceConfig),
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
        .app_data(parts.mfa)
        .app_data(parts.passkeys)
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
        .service(web::resource("/api/register").route(web::post().to(routes::register)))
        .service(web::resource("/api/login").route(web::post().to(routes::login)))
        .service(web::resource("/api/login/mfa").route(web::post().to(routes::login_second_step)))
        .service(web::resource("/api/logout").route(web::post().to(routes::logout)))
        .service(readable("/api/openapi.yaml", routes::openapi, public))
        .service(readable("/api/auth/check", routes::auth_check, public))
        .service(
            readable("/api/me", routes::me, login_required)
                .route(login_required(web::patch().to(routes::update_me)))
                .route(login_required(web::delete().to(routes::delete_me))),
        )
        .service(
            web::resource("/api/me/password")
                .route(login_required(web::post().to(routes::change_password))),
        )
        .service(
            // Setting up a factor serves a logged-in owner or, under
            // MFA_REQUIRED, a login's mfa_token: the handlers check which.
            web::resource("/api/mfa/totp")
                .route(web::post().to(routes::start_totp))
                .route(login_required(web::delete().to(routes::disable_totp))),
        )
        .service(web::resource("/api/mfa/totp/confirm").route(web::post().to(routes::confirm_totp)))
        .service(
            web::resource("/api/mfa/recovery-codes").route(login_required(
                web::post().to(routes::regenerate_recovery_codes),
            )),
        )
        .service(
            web::resource("/api/passkeys/register/start").route(login_required(
                web::post().to(routes::start_passkey_registration),
            )),
        )
        .service(
            web::resource("/api/passkeys/register/finish").route(login_required(
                web::post().to(routes::finish_passkey_registration),
            )),
        )
        .service(
            web::resource("/api/passkeys/login/start")
                .route(web::post().to(routes::start_passkey_login)),
        )
        .service(
            web::resource("/api/passkeys/login/finish")
                .route(web::post().to(routes::finish_passkey_login)),
        )
        .service(readable(
            "/api/passkeys",
            routes::list_passkeys,
            login_required,
        ))
        .service(
            web::resource("/api/passkeys/{id}")
                .route(login_required(web::patch().to(routes::rename_passkey)))
                .route(login_required(web::delete().to(routes::remove_passkey))),
        )
        .service(readable(
            "/api/sessions",
            routes::list_sessions,
            login_required,
        ))
        .service(
            web::resource("/api/sessions/{id}")
                .route(login_required(web::delete().to(routes::end_session))),
        )
        .service(
            web::resource("/api/password/forgot").route(web::post().to(routes::forgot_password)),
        )
        .service(web::resource("/api/password/reset").route(web::post().to(routes::reset_password)))
        .service(web::resource("/api/email/verify").route(web::post().to(routes::verify_email)))
        .service(
            web::resource("/api/email/verify/resend")
                .route(login_required(web::post().to(routes::resend_verification))),
        )
        // The embedding application's routes, behind the same middleware.
        .configure(routes)
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
