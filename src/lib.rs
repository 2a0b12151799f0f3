//! authd: user accounts and login sessions as a JSON API, and, as a
//! library, the part of your own actix-web application that knows who is
//! logged in: Flask-Login's `login_required` for Rust.
//!
//! # Protecting your own routes
//!
//! Build the server `authd serve` runs, with your routes beside authd's.
//! They get authd's error format (RFC 9457 problem documents), its origin
//! and CSRF checks on unsafe methods, and its security headers. Wrap a
//! route in [`login_required`], and read the caller with the
//! [`Authenticated`] extractor; anyone else gets `401` with a `login_url`
//! that brings them back. This is `examples/microblog.rs`, which a test
//! builds and runs:
//!
//! ```no_run
#![doc = include_str!("../examples/microblog.rs")]
//! ```
//!
//! To build the server yourself (your own `HttpServer`, middleware or
//! listeners), start [`Authd`] and make each worker's `App` from
//! [`Authd::http`]:
//!
//! ```no_run
//! # use actix_web::{HttpResponse, HttpServer, web};
//! # async fn index(me: authd::Authenticated) -> HttpResponse { HttpResponse::Ok().finish() }
//! # #[actix_web::main]
//! # async fn main() -> anyhow::Result<()> {
//! let settings = authd::Settings::from_env()?;
//! let authd = authd::Authd::start(&settings).await?;
//! let http = authd.http().clone();
//! HttpServer::new(move || {
//!     http.app(|routes| {
//!         routes.service(
//!             web::resource("/api/index").route(authd::login_required(web::get().to(index))),
//!         );
//!     })
//! })
//! .bind(settings.http.bind)?
//! .run()
//! .await?;
//! authd.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! What this page lists is the library: [`configuration`] for the
//! settings, and the command line ([`cli`]), whose default command serves.
//! The rest of the crate is how authd works inside (its layers, `http`,
//! `services`, `db` and `domain`, each importing only those under it; see
//! the README's Architecture), not a promise to users of the library.

/// Declares the modules that are authd's inner workings: visible to the
/// crate, and public only with the `internals` feature, which authd's own
/// tests turn on to reach what they inspect.
macro_rules! internal {
    ($($(#[$meta:meta])* $module:ident),* $(,)?) => {
        $(
            $(#[$meta])*
            #[cfg(feature = "internals")]
            #[doc(hidden)]
            pub mod $module;
            $(#[$meta])*
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $module;
        )*
    };
}

pub mod cli;
pub mod configuration;

internal!(
    clock,
    crypto,
    db,
    domain,
    http,
    /// Diesel's tables, generated from the migrations by `diesel
    /// print-schema` (CI checks it): never edited by hand.
    schema,
    services,
    startup,
    telemetry,
);

pub use configuration::{ConfigError, LogFormat, Settings};
pub use db::sessions::Session;
pub use db::users::User;
pub use domain::{CsrfToken, PasswordHash, SessionId, SessionToken, UserId};
pub use http::HttpParts;
pub use http::auth::authenticate::{Authenticated, Via};
pub use http::auth::middleware::login_required;
pub use http::error::ApiError;
pub use services::sessions::LiveSession;
pub use startup::{Application, Authd, Builder};
pub use telemetry::{Logging, init as init_logging};
