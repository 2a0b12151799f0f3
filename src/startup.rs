//! Builds the application from [`Settings`]: prepares the database, derives
//! keys, wires the services together and starts the HTTP server. Tests
//! start it through the same code path as `main`, on a random port; the
//! command line uses the same services without the server.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;

use crate::configuration::{Environment, Settings};
use crate::crypto::derive_key;
use crate::db::{self, PgPool, PoolOptions};
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::CookiePolicy;
use crate::http::auth::origin::OriginPolicy;
use crate::http::auth::token::TokenKeys;
use crate::http::client::TrustedProxies;
use crate::http::json::ClientTimeout;
use crate::http::routes::Draining;
use crate::http::{self, Parts};
use crate::services::Core;
use crate::services::accounts::Accounts;
use crate::services::passwords::PasswordHasher;
use crate::services::recovery::Recovery;
use crate::services::recovery::mail::{Links, Mailer};
use crate::services::recovery::outbox::{Outbox, RunningWorker, Worker};
use crate::services::retention::Retention;
use crate::services::session_cache::Listener;
use crate::services::sessions::{Lifetimes, Sessions};
use crate::services::throttle::Throttle;
use crate::services::throttle::postgres::PostgresStore;
use crate::services::throttle::redis::RedisStore;

/// The services, wired to a prepared database: what the server serves and
/// the command line uses.
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub retention: Retention,
    pub recovery: Recovery,
    pub outbox: Outbox,
    pub mailer: Mailer,
}

impl Services {
    /// Creates and migrates the database, then builds every service, with
    /// `min_idle` connections kept warm.
    pub async fn start(settings: &Settings, min_idle: u32) -> anyhow::Result<Self> {
        let database_url = settings.direct_database_url().to_owned();
        web::block(move || db::migrations::prepare(&database_url))
            .await
            .context("database preparation was cancelled")??;
        let hasher = PasswordHasher::start(settings.bcrypt_cost, settings.hash_threads)
            .context("BCRYPT_COST")?;
        let mailer = Mailer::new(&settings.recovery)?;
        let pool = db::pool(
            &settings.database_url,
            PoolOptions {
                size: settings.db_pool_size,
                min_idle,
                timeout: settings.db_timeout.std(),
                statement_timeout: settings.db_statement_timeout.std(),
                pooled: settings.pooled(),
            },
        );
        match Self::throttle(settings, &pool).await {
            Ok(throttle) => Ok(Self::wire(settings, pool, hasher, throttle, mailer)),
            Err(error) => {
                let timeout = settings.db_timeout.std();
                web::block(move || db::close(pool, timeout)).await.ok();
                Err(error)
            }
        }
    }

    async fn throttle(settings: &Settings, pool: &PgPool) -> anyhow::Result<Throttle> {
        // Keyed by a secret in the database, not SECRET_KEY: instances in
        // the middle of a key rotation still count together.
        let shared = db::run(pool, |conn| {
            db::shared_secrets::get(conn, db::shared_secrets::THROTTLE_KEY)
        })
        .await
        .context("cannot read the shared throttle key")?;
        let throttle_key = derive_key(&shared, "authd throttle identifiers v1");
        Ok(match &settings.redis_url {
            Some(url) => Throttle::new(
                RedisStore::connect(url, &settings.redis_prefix, settings.db_timeout.std())
                    .await
                    .context("cannot connect to REDIS_URL")?,
                throttle_key,
            ),
            None => Throttle::new(PostgresStore::new(pool.clone()), throttle_key),
        })
    }

    /// Waits until no connection is being opened, so the process can exit.
    pub async fn close(self, timeout: Duration) {
        web::block(move || db::close(self.pool, timeout)).await.ok();
    }

    /// Wires the services from the settings and the parts that took I/O or
    /// blocking work to make.
    pub fn wire(
        settings: &Settings,
        pool: PgPool,
        hasher: PasswordHasher,
        throttle: Throttle,
        mailer: Mailer,
    ) -> Self {
        let outbox = Outbox::new(&settings.recovery);
        let sessions = Sessions::new(
            pool.clone(),
            Lifetimes {
                session: settings.session_ttl,
                remember: settings.remember_ttl,
                idle: settings.session_idle_ttl,
            },
        );
        let core = Core {
            pool: pool.clone(),
            hasher,
            throttle,
            sessions: sessions.clone(),
            limits: settings.throttle,
        };
        Self {
            accounts: Accounts::new(
                core.clone(),
                outbox.clone(),
                settings.recovery.require_verified_email,
            ),
            recovery: Recovery::new(core, outbox.clone(), Links::new(&settings.recovery)),
            outbox,
            mailer,
            sessions,
            retention: Retention::new(
                pool.clone(),
                settings.audit_retention,
                settings.throttle.longest_window(),
            ),
            pool,
        }
    }

    /// The HTTP layer's parts: the services and the policies of HTTP.
    pub fn parts(&self, settings: &Settings) -> Parts {
        let previous = settings.secret_key_previous.as_ref();
        Parts {
            accounts: web::Data::new(self.accounts.clone()),
            recovery: web::Data::new(self.recovery.clone()),
            auth: web::Data::new(Auth {
                sessions: self.sessions.clone(),
                tokens: TokenKeys::derive(&settings.secret_key, previous),
            }),
            origins: web::Data::new(OriginPolicy {
                public_origin: settings.public_origin.clone(),
                cors_origins: settings.cors_origins.clone(),
            }),
            cookies: web::Data::new(CookiePolicy::new(
                settings.cookie_secure,
                settings.clear_site_data,
                &settings.secret_key,
                previous,
            )),
            timeout: web::Data::new(ClientTimeout(settings.client_timeout.std())),
            draining: web::Data::default(),
            proxies: web::Data::new(TrustedProxies {
                networks: settings.trusted_proxies.clone(),
                header: settings.client_ip_header,
            }),
            pool: web::Data::new(self.pool.clone()),
        }
    }
}

/// Stops the invalidation listener, off the async workers (it joins a thread).
async fn stop(listener: Listener) {
    web::block(move || listener.stop()).await.ok();
}

/// The server, and what it needs to shut down in order.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics: Option<Server>,
    draining: web::Data<Draining>,
    services: Services,
    listener: Listener,
    /// None when account recovery is off: nothing is mailed.
    mail_worker: Option<RunningWorker>,
    db_timeout: Duration,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.secret_key_generated {
            tracing::warn!(
                "SECRET_KEY is not set: using a random key, so sessions will not survive a \
                 restart and instances will not accept each other's cookies or tokens"
            );
        }
        if settings.environment == Environment::Production && settings.public_origin.is_none() {
            tracing::warn!(
                "PUBLIC_URL is not set: the Origin check takes this server's origin to be \
                 plain http at the Host header, so browsers reaching it over https through a \
                 proxy will be refused; set PUBLIC_URL to the origin clients use"
            );
        }
        warn_about_mail(&settings);
        // Bound first: a port in use stops the start before any connection
        // to the database is opened.
        let socket = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on BIND={}", settings.bind))?;
        let port = socket.local_addr()?.port();
        let metrics_socket = match settings.metrics_bind {
            Some(address) => Some(
                TcpListener::bind(address)
                    .with_context(|| format!("cannot listen on METRICS_BIND={address}"))?,
            ),
            None => None,
        };
        let services = Services::start(&settings, 1).await?;
        warn_without_statement_timeout(&settings, &services.pool).await;
        let listener =
            match Listener::start(settings.direct_database_url(), services.sessions.cache()) {
                Ok(listener) => listener,
                Err(error) => {
                    services.close(settings.db_timeout.std()).await;
                    return Err(error).context("cannot start the invalidation listener");
                }
            };
        let mail_worker = match start_mail_worker(&settings, &services) {
            Ok(worker) => worker,
            Err(error) => {
                stop(listener).await;
                services.close(settings.db_timeout.std()).await;
                return Err(error).context("cannot start the mail worker");
            }
        };
        match serve(&settings, &services, socket, metrics_socket) {
            Ok((server, metrics, draining)) => {
                services
                    .retention
                    .clone()
                    .run_every(settings.purge_interval.std());
                services.sessions.flush_touches_regularly();
                tracing::info!(address = %settings.bind.ip(), port, "authd listening");
                Ok(Self {
                    port,
                    metrics_port: metrics.as_ref().map(|(_, port)| *port),
                    server,
                    metrics: metrics.map(|(server, _)| server),
                    draining,
                    services,
                    listener,
                    mail_worker,
                    db_timeout: settings.db_timeout.std(),
                    shutdown_timeout: settings.shutdown_timeout.std(),
                })
            }
            Err(error) => {
                stop(listener).await;
                stop_mail_worker(mail_worker, settings.db_timeout.std()).await;
                services.close(settings.db_timeout.std()).await;
                Err(error)
            }
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
        stop(self.listener).await;
        stop_mail_worker(self.mail_worker, self.db_timeout).await;
        self.services.sessions.flush_touches().await;
        self.services.close(self.db_timeout).await;
        tracing::info!("stopped");
        served
    }
}

/// The outbox worker, on a pool of its own, when recovery is on.
fn start_mail_worker(
    settings: &Settings,
    services: &Services,
) -> anyhow::Result<Option<RunningWorker>> {
    if !settings.recovery.enabled {
        return Ok(None);
    }
    let pool = db::pool(
        &settings.database_url,
        PoolOptions {
            size: 2,
            min_idle: 0,
            timeout: settings.db_timeout.std(),
            statement_timeout: settings.db_statement_timeout.std(),
            pooled: settings.pooled(),
        },
    );
    let worker = Worker {
        pool,
        mailer: services.mailer.clone(),
        links: Links::new(&settings.recovery),
        outbox: services.outbox.clone(),
    };
    Ok(Some(worker.start()?))
}

/// Stops the outbox worker, giving the mail being sent a few seconds: past
/// them the process may exit, its row lock ends with its connection, and
/// another instance sends the mail.
async fn stop_mail_worker(worker: Option<RunningWorker>, db_timeout: Duration) {
    let Some(worker) = worker else {
        return;
    };
    let stopped = web::block(move || worker.stop(db_timeout));
    if tokio::time::timeout(MAIL_STOP_WAIT, stopped).await.is_err() {
        tracing::warn!("a mail was still being sent at shutdown; it stays queued");
    }
}

/// How long shutdown waits for a mail being sent (after the requests in
/// flight): short, since an unsent mail is never lost.
const MAIL_STOP_WAIT: Duration = Duration::from_secs(3);

/// Behind a transaction pooler `DB_STATEMENT_TIMEOUT` cannot be set per
/// connection; says so when the role does not set a timeout either, since
/// a blocked query would then hold its connection for ever.
async fn warn_without_statement_timeout(settings: &Settings, pool: &PgPool) {
    if !settings.pooled() {
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
    let recovery = &settings.recovery;
    if !recovery.enabled {
        return;
    }
    for (variable, default) in &recovery.unset_in_production {
        tracing::warn!(
            "{variable} is not set: recovery mails use development's default ({default}), \
             which is wrong in production"
        );
    }
    if recovery.smtp_url.is_none() {
        tracing::warn!(
            "SMTP_URL is not set: recovery and verification mails are written to the log \
             instead of sent (development only)"
        );
    } else if let Some(host) = recovery.plain_smtp_host()
        && settings.environment == Environment::Production
    {
        tracing::warn!(
            %host,
            "SMTP_URL sends mail in plain text to another host: anyone on the way can read \
             the reset links; use smtps:// or ?tls=required"
        );
    }
}

type Served = (Server, Option<(Server, u16)>, web::Data<Draining>);

/// The HTTP server (and the metrics one) on their bound sockets.
fn serve(
    settings: &Settings,
    services: &Services,
    socket: TcpListener,
    metrics_socket: Option<TcpListener>,
) -> anyhow::Result<Served> {
    let parts = services.parts(settings);
    let draining = parts.draining.clone();
    let server = HttpServer::new(move || http::app(parts.clone()))
        // A head that has not arrived in time gets 408 from actix itself;
        // a body, from the JSON extractor.
        .client_request_timeout(settings.client_timeout.std())
        .shutdown_timeout(settings.shutdown_timeout.std().as_secs().max(1))
        // Signals are ours to handle (`stop_on_signals`): /readyz must turn
        // 503 as shutdown begins.
        .disable_signals()
        .listen(socket)?
        .run();
    let metrics = match metrics_socket {
        Some(socket) => {
            crate::telemetry::metrics();
            let port = socket.local_addr()?.port();
            let pool = web::Data::new(services.pool.clone());
            let server = HttpServer::new(move || http::metrics::app(pool.clone()))
                .workers(1)
                .shutdown_timeout(settings.shutdown_timeout.std().as_secs().max(1))
                .disable_signals()
                .listen(socket)?
                .run();
            Some((server, port))
        }
        None => None,
    };
    Ok((server, metrics, draining))
}
