//! Builds the application from [`Settings`]: prepares the database, wires
//! the services together ([`services`]), starts what runs beside the server
//! ([`background`]) and the HTTP server. Tests start it through the same
//! code path as `main`, on a random port; the command line uses the same
//! services without the server.

pub mod background;
pub mod services;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;

#[cfg(feature = "internals")]
use crate::clock::Clock;
use crate::configuration::{Environment, Settings};
use crate::db::{self, PgPool};
use crate::http::HttpParts;
use crate::http::routes::Draining;
#[cfg(feature = "internals")]
use crate::services::mail::Worker;
#[cfg(feature = "internals")]
use crate::services::sessions::Sessions;

pub use background::{Background, MailDelivery};
pub use services::Services;

/// An embedding application's routes, added to authd's in every worker.
pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// authd, started: its services on a prepared database, and what runs
/// beside them (the invalidation listener, the mail worker, the purge).
/// What an application that embeds authd holds; [`Authd::http`] gives the
/// parts to build each server worker's `App` from.
pub struct Authd {
    services: Services,
    background: Background,
    http: HttpParts,
    db_timeout: Duration,
}

impl Authd {
    /// Creates and migrates the database, starts the services and their
    /// background work: what `authd serve` does before it listens.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        Self::start_with(settings, MailDelivery::Background).await
    }

    async fn start_with(settings: &Settings, delivery: MailDelivery) -> anyhow::Result<Self> {
        let db_timeout = settings.database.timeout.std();
        let services = Services::start(settings, 1).await?;
        warn_without_statement_timeout(settings, &services.pool).await;
        let background = match Background::start(settings, &services, delivery).await {
            Ok(background) => background,
            Err(error) => {
                services.close(db_timeout).await;
                return Err(error);
            }
        };
        Ok(Self {
            http: services.parts(settings),
            services,
            background,
            db_timeout,
        })
    }

    /// What each server worker's `App` is made of:
    /// `authd.http().app(|routes| { routes.service(…); })` gives authd's
    /// routes and middleware with the application's routes behind them.
    pub fn http(&self) -> &HttpParts {
        &self.http
    }

    /// The time the services go by (for authd's tests).
    #[cfg(feature = "internals")]
    pub fn clock(&self) -> &Clock {
        &self.services.clock
    }

    /// The sessions service, whose activity a test can flush at once.
    #[cfg(feature = "internals")]
    pub fn sessions(&self) -> &Sessions {
        &self.services.sessions
    }

    /// The mail worker, when started with [`MailDelivery::OnDemand`].
    #[cfg(feature = "internals")]
    pub fn mail(&self) -> Option<&Worker> {
        self.background.mail()
    }

    /// Stops what runs beside the services, then waits for the pool to
    /// settle, so that the process can exit cleanly.
    pub async fn stop(self) {
        self.background.stop().await;
        self.services.close(self.db_timeout).await;
    }
}

/// The server, and what it needs to shut down in order.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics: Option<Server>,
    draining: web::Data<Draining>,
    authd: Authd,
    shutdown_timeout: Duration,
}

/// How to build an [`Application`]: its settings, and optionally routes of
/// an embedding application's own and when mail is delivered.
pub struct Builder {
    settings: Settings,
    routes: Routes,
    delivery: MailDelivery,
}

impl Builder {
    /// Adds the application's routes, served beside authd's with the same
    /// middleware (protect one with [`login_required`](crate::login_required)).
    /// They share the HTTP workers' blocking threads, `DB_POOL_SIZE` a
    /// worker, with authd's database calls: run long blocking work of
    /// their own on threads of its own.
    pub fn routes(
        mut self,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.routes = Arc::new(routes);
        self
    }

    /// When mail is delivered: by a thread of its own (the default), or when
    /// a test asks.
    #[cfg(feature = "internals")]
    pub fn mail_delivery(mut self, delivery: MailDelivery) -> Self {
        self.delivery = delivery;
        self
    }

    pub async fn build(self) -> anyhow::Result<Application> {
        let Self {
            settings,
            routes,
            delivery,
        } = self;
        warn_about_settings(&settings);
        // Bound first: a port in use stops the start before any connection
        // to the database is opened.
        let bind = settings.http.bind;
        let socket =
            TcpListener::bind(bind).with_context(|| format!("cannot listen on BIND={bind}"))?;
        let port = socket.local_addr()?.port();
        let metrics_socket = match settings.http.metrics_bind {
            Some(address) => Some(
                TcpListener::bind(address)
                    .with_context(|| format!("cannot listen on METRICS_BIND={address}"))?,
            ),
            None => None,
        };
        let authd = Authd::start_with(&settings, delivery).await?;
        let (server, metrics) = match serve(&settings, &authd, routes, socket, metrics_socket) {
            Ok(served) => served,
            Err(error) => {
                authd.stop().await;
                return Err(error);
            }
        };
        tracing::info!(address = %bind.ip(), port, "authd listening");
        Ok(Application {
            port,
            metrics_port: metrics.as_ref().map(|(_, port)| *port),
            server,
            metrics: metrics.map(|(server, _)| server),
            draining: authd.http.draining.clone(),
            authd,
            shutdown_timeout: settings.http.shutdown_timeout.std(),
        })
    }
}

impl Application {
    /// What `authd serve` runs.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::builder(settings).build().await
    }

    #[cfg(feature = "internals")]
    pub async fn build_with(settings: Settings, delivery: MailDelivery) -> anyhow::Result<Self> {
        Self::builder(settings)
            .mail_delivery(delivery)
            .build()
            .await
    }

    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            routes: Arc::new(|_| {}),
            delivery: MailDelivery::Background,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on, when `METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// authd's services, started.
    pub fn authd(&self) -> &Authd {
        &self.authd
    }

    /// Begins a graceful shutdown on SIGTERM or SIGINT: `/readyz` answers
    /// 503 at once; while the requests in flight finish the instance still
    /// answers (so a load balancer sees the 503), then the listener stops
    /// accepting and what still runs gets `SHUTDOWN_TIMEOUT` to finish. A
    /// request in flight at the signal that outlasts the timeout is cut off.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (server, draining) = (self.server.handle(), self.draining.clone());
        let shutdown_timeout = self.shutdown_timeout;
        let metrics = self.metrics.as_ref().map(Server::handle);
        tokio::spawn(async move {
            let signal = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal, "shutting down: finishing the requests in flight");
            draining.begin();
            // Past the timeout, what still runs is cut off.
            let graceful = draining.earlier_requests_done(shutdown_timeout).await;
            // Both at once: a scrape in progress must not keep the API
            // listener accepting.
            match metrics {
                Some(metrics) => {
                    futures_util::future::join(metrics.stop(graceful), server.stop(graceful)).await;
                }
                None => server.stop(graceful).await,
            }
        });
        Ok(())
    }

    /// Serves until stopped, then stops what runs beside the server and
    /// waits for the pool to settle, so that the process can exit cleanly.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = match self.metrics {
            Some(metrics) => futures_util::future::join(self.server, metrics).await.0,
            None => self.server.await,
        };
        self.authd.stop().await;
        tracing::info!("stopped");
        served
    }
}

/// Says, once at start-up, what in the settings deserves a warning.
fn warn_about_settings(settings: &Settings) {
    if settings.secrets.key_generated {
        tracing::warn!(
            "SECRET_KEY is not set: using a random key, so sessions will not survive a \
             restart and instances will not accept each other's cookies or tokens"
        );
    }
    if settings.environment == Environment::Production && settings.http.public_origin.is_none() {
        tracing::warn!(
            "PUBLIC_URL is not set: the Origin check takes this server's origin to be \
             plain http at the Host header, so browsers reaching it over https through a \
             proxy will be refused; set PUBLIC_URL to the origin clients use"
        );
    }
    warn_about_mail(settings);
    warn_about_passkeys(settings);
}

/// Says, once at start-up, when passkeys are off or some pages cannot use
/// them, and why.
fn warn_about_passkeys(settings: &Settings) {
    let webauthn = &settings.webauthn;
    if webauthn.rp_id.is_none() {
        tracing::warn!(
            "passkeys are off: PUBLIC_APP_URL's host is no domain to bind them to and \
             WEBAUTHN_RP_ID is not set"
        );
        return;
    }
    for origin in &webauthn.left_out {
        tracing::warn!(
            %origin,
            "passkeys will not work from this origin: its host is not under the default \
             WEBAUTHN_RP_ID (the host of PUBLIC_APP_URL); set WEBAUTHN_RP_ID and \
             WEBAUTHN_ORIGINS"
        );
    }
}

/// Behind a transaction pooler `DB_STATEMENT_TIMEOUT` cannot be set per
/// connection; says so when the role does not set a timeout either, since
/// a blocked query would then hold its connection for ever.
async fn warn_without_statement_timeout(settings: &Settings, pool: &PgPool) {
    if !settings.database.pooled() {
        return;
    }
    match db::statement_timeout(pool).await {
        Ok(timeout) if timeout == "0" => tracing::warn!(
            "DB_STATEMENT_TIMEOUT is not applied through DATABASE_URL's pooler, and the \
             database role sets no statement_timeout: set one on the role, for example \
             ALTER ROLE authd SET statement_timeout = '5s'"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read statement_timeout"),
    }
}

/// Says, once at start-up, where mail goes when that deserves a warning.
fn warn_about_mail(settings: &Settings) {
    let mail = &settings.mail;
    if !(settings.recovery.enabled || mail.security_notifications) {
        return;
    }
    for (variable, default) in &mail.unset_in_production {
        tracing::warn!(
            "{variable} is not set: mails use development's default ({default}), \
             which is wrong in production"
        );
    }
    if mail.smtp_url.is_none() {
        tracing::warn!(
            "SMTP_URL is not set: recovery mails and security notices are written to the log \
             instead of sent (development only)"
        );
    } else if let Some(host) = mail.plain_smtp_host()
        && settings.environment == Environment::Production
    {
        tracing::warn!(
            %host,
            "SMTP_URL sends mail in plain text to another host: anyone on the way can read \
             the reset links; use smtps:// or ?tls=required"
        );
    }
}

type Served = (Server, Option<(Server, u16)>);

/// The HTTP server (and the metrics one) on their bound sockets.
fn serve(
    settings: &Settings,
    authd: &Authd,
    routes: Routes,
    socket: TcpListener,
    metrics_socket: Option<TcpListener>,
) -> anyhow::Result<Served> {
    let parts = authd.http.clone();
    let shutdown_timeout = settings.http.shutdown_timeout.std().as_secs().max(1);
    // Installed before the API serves its first request: each worker keeps
    // the handles its first requests resolve (see `http::request_span`),
    // and handles resolved without a recorder record nothing, for good.
    let metrics_socket = metrics_socket.map(|socket| {
        let mail_kinds: Vec<&'static str> = crate::services::mail_kinds()
            .into_iter()
            .map(|kind| kind.0)
            .collect();
        let recorder = crate::telemetry::metrics(crate::telemetry::LabelValues {
            login_outcomes: crate::services::login::LOGIN_OUTCOMES,
            mail_kinds: &mail_kinds,
        });
        (socket, recorder)
    });
    let server = HttpServer::new(move || {
        let routes = routes.clone();
        parts.app(move |config| routes(config))
    })
    // A head that has not arrived in time gets 408 from actix itself;
    // a body, from the JSON extractor.
    .client_request_timeout(settings.http.client_timeout.std())
    .shutdown_timeout(shutdown_timeout)
    // Database calls run on each worker's blocking threads, a pool
    // connection each at most (see `db::run`): more threads would only
    // hold memory. Without a bound, a thread that had not yet gone idle
    // when the next call came made Tokio start another, and under load
    // their number passed fifty.
    .worker_max_blocking_threads(usize::try_from(settings.database.pool_size).unwrap_or(1))
    // Signals are ours to handle (`stop_on_signals`): /readyz must turn
    // 503 as shutdown begins.
    .disable_signals()
    .listen(socket)?
    .run();
    let metrics = match metrics_socket {
        Some((socket, recorder)) => {
            let port = socket.local_addr()?.port();
            let pool = web::Data::new(authd.services.pool.clone());
            let recorder = web::Data::new(recorder.clone());
            let server =
                HttpServer::new(move || crate::http::metrics::app(pool.clone(), recorder.clone()))
                    .workers(1)
                    .shutdown_timeout(shutdown_timeout)
                    .disable_signals()
                    .listen(socket)?
                    .run();
            Some((server, port))
        }
        None => None,
    };
    Ok((server, metrics))
}
