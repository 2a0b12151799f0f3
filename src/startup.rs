//! Builds the application from [`Settings`]: prepares the database, derives
//! keys, and assembles the actix-web app. Tests start it through the same
//! code path as `main`, on a random port.

use std::net::TcpListener;

use actix_cors::Cors;
use actix_identity::IdentityMiddleware;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::auth::cookies::{accept_previous_key, persist_remembered};
use crate::auth::keys::Keys;
use crate::auth::middleware::protected;
use crate::configuration::Settings;
use crate::db;
use crate::error::problem_for_framework_error;
use crate::passwords::Passwords;
use crate::routes;
use crate::security_headers::security_headers;
use crate::state::AppState;
use crate::throttle::Throttle;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.secret_key_generated {
            tracing::warn!(
                "SECRET_KEY is not set: using a random key, so sessions will not survive a \
                 restart and instances will not accept each other's cookies or tokens"
            );
        }
        let database_url = settings.database_url.clone();
        web::block(move || db::prepare(&database_url))
            .await
            .context("database preparation was cancelled")??;
        let cost = settings.bcrypt_cost;
        let passwords = web::block(move || Passwords::new(cost))
            .await
            .context("start-up hashing was cancelled")?
            .context("BCRYPT_COST")?;

        let pool = db::pool(
            &settings.database_url,
            settings.db_pool_size,
            settings.db_timeout,
        );
        let keys = Keys::derive(&settings.secret_key, settings.secret_key_previous.as_ref());
        let throttle_key = keys.throttle;
        let throttle = match &settings.redis_url {
            Some(url) => Throttle::redis(url, settings.db_timeout, settings.throttle, throttle_key)
                .await
                .context("cannot connect to REDIS_URL")?,
            None => Throttle::postgres(pool.clone(), settings.throttle, throttle_key),
        };
        let state = web::Data::new(AppState::new(&settings, keys, pool, passwords, throttle));

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on BIND={}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || app(state.clone()))
            .listen(listener)?
            .run();
        tracing::info!(address = %settings.bind.ip(), port, "authd listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The whole HTTP surface: middleware and routes.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let session = state.cookies.session_middleware(state.keys.cookie.clone());
    let cors = cors(&state.cors_origins);
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(routes::MAX_BODY_BYTES))
        // Listed innermost first: identity needs the session; a cookie sealed
        // with the previous key is re-sealed before the session reads it;
        // the remember-me rewrite needs the session's cookie; CORS answers
        // preflights before any of that; every error (CORS refusals too)
        // passes through the problem+json handler before it is logged; and
        // every response, errors included, gets the security headers.
        .wrap(IdentityMiddleware::default())
        .wrap(session)
        .wrap(from_fn(accept_previous_key))
        .wrap(from_fn(persist_remembered))
        .wrap(cors)
        .wrap(ErrorHandlers::new().default_handler(problem_for_framework_error))
        .wrap(TracingLogger::default())
        .wrap(from_fn(security_headers))
        .service(web::resource("/healthz").route(web::get().to(routes::healthz)))
        .service(web::resource("/readyz").route(web::get().to(routes::readyz)))
        .service(
            web::scope("/api")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")))
                .service(web::resource("/register").route(web::post().to(routes::register)))
                .service(web::resource("/login").route(web::post().to(routes::login)))
                .service(web::resource("/logout").route(web::post().to(routes::logout)))
                .service(web::resource("/openapi.yaml").route(web::get().to(routes::openapi)))
                .service(web::resource("/me").route(protected(web::get().to(routes::me)))),
        )
        .default_service(web::to(routes::not_found))
}

/// Credentialed CORS for the allowlisted origins only: any other origin gets
/// no CORS headers at all (never a reflection, never `*`).
fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([Method::GET, Method::POST])
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
