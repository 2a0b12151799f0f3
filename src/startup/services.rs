//! The services, wired to a prepared database: what the server serves and
//! the command line uses.

use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::configuration::Settings;
use crate::crypto::derive_key;
use crate::db::{self, PgPool, PoolOptions};
use crate::http::HttpParts;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::CookiePolicy;
use crate::http::auth::origin::OriginPolicy;
use crate::http::auth::token::TokenKeys;
use crate::http::client::TrustedProxies;
use crate::http::json::ClientTimeout;
use crate::services::Core;
use crate::services::accounts::Accounts;
use crate::services::factors::Factors;
use crate::services::login::{Login, LoginPolicy};
use crate::services::mail::{Links, Mailer, Outbox};
use crate::services::mfa::Mfa;
use crate::services::notices::Notices;
use crate::services::passkeys::Passkeys;
use crate::services::passwords::PasswordHasher;
use crate::services::recovery::Recovery;
use crate::services::retention::Retention;
use crate::services::sessions::{Lifetimes, Sessions};
use crate::services::throttle::Throttle;
use crate::services::throttle::in_flight::InFlight;
use crate::services::throttle::postgres::PostgresStore;
use crate::services::throttle::redis::RedisStore;

#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub accounts: Accounts,
    pub mfa: Mfa,
    pub passkeys: Passkeys,
    pub login: Login,
    pub sessions: Sessions,
    pub retention: Retention,
    pub recovery: Recovery,
    pub outbox: Outbox,
    pub mailer: Mailer,
    pub clock: Clock,
}

impl Services {
    /// Creates and migrates the database, then builds every service, with
    /// `min_idle` connections kept warm.
    pub async fn start(settings: &Settings, min_idle: u32) -> anyhow::Result<Self> {
        let database_url = settings.database.direct_url().to_owned();
        tokio::task::spawn_blocking(move || db::migrations::prepare(&database_url))
            .await
            .context("database preparation was cancelled")??;
        let hasher = PasswordHasher::start(
            settings.passwords.bcrypt_cost,
            settings.passwords.hash_threads,
        )
        .context("BCRYPT_COST")?;
        let mailer = Mailer::new(&settings.mail)?;
        let pool = pool(settings, settings.database.pool_size, min_idle);
        let clock = Clock::default();
        match Self::throttle(settings, &pool, &clock).await {
            Ok(throttle) => Ok(Self::wire(settings, pool, hasher, throttle, mailer, clock)),
            Err(error) => {
                close(pool, settings.database.timeout.std()).await;
                Err(error)
            }
        }
    }

    async fn throttle(
        settings: &Settings,
        pool: &PgPool,
        clock: &Clock,
    ) -> anyhow::Result<Throttle> {
        // Keyed by a secret in the database, not SECRET_KEY: instances in
        // the middle of a key rotation still count together.
        let shared = db::run(pool, |conn| {
            db::shared_secrets::get(conn, db::shared_secrets::THROTTLE_KEY)
        })
        .await
        .context("cannot read the shared throttle key")?;
        let throttle_key = derive_key(&shared, "authd throttle identifiers v1");
        let timeout = settings.database.timeout.std();
        Ok(match &settings.throttle.redis_url {
            Some(url) => Throttle::new(
                RedisStore::connect(
                    url.expose_secret(),
                    &settings.throttle.redis_prefix,
                    timeout,
                )
                .await
                .context("cannot connect to REDIS_URL")?,
                throttle_key,
                clock.clone(),
            ),
            None => Throttle::new(
                PostgresStore::new(pool.clone()),
                throttle_key,
                clock.clone(),
            ),
        })
    }

    /// Waits until no connection is being opened, so the process can exit.
    pub async fn close(self, timeout: Duration) {
        close(self.pool, timeout).await;
    }

    /// Wires the services from the settings and the parts that took I/O or
    /// blocking work to make.
    pub fn wire(
        settings: &Settings,
        pool: PgPool,
        hasher: PasswordHasher,
        throttle: Throttle,
        mailer: Mailer,
        clock: Clock,
    ) -> Self {
        let outbox = Outbox::default();
        let sessions = Sessions::new(
            pool.clone(),
            Lifetimes {
                session: settings.sessions.ttl,
                remember: settings.sessions.remember_ttl,
                idle: settings.sessions.idle_ttl,
            },
            settings.sessions.cache_capacity,
            clock.clone(),
        );
        let notices = Notices::new(settings.mail.security_notifications, clock.clone());
        let core = Core {
            pool: pool.clone(),
            hasher,
            throttle,
            sessions: sessions.clone(),
            limits: settings.throttle.clone(),
            in_flight: InFlight::new(settings.throttle.login_in_flight_per_ip),
            factors: Factors::new(
                pool.clone(),
                clock.clone(),
                notices.clone(),
                &settings.secrets.key,
                settings.secrets.previous.as_ref(),
            ),
            notices,
            clock: clock.clone(),
        };
        let recovery = Recovery::new(
            core.clone(),
            outbox.clone(),
            Links::new(&settings.mail),
            &settings.recovery,
        );
        let mfa = Mfa::new(core.clone(), settings.mfa.issuer.clone());
        let passkeys = Passkeys::new(
            core.clone(),
            settings.webauthn.relying_party(),
            settings.webauthn.challenge_ttl.delta(),
        );
        Self {
            accounts: Accounts::new(core.clone(), recovery.clone()),
            login: Login::new(
                core,
                recovery.clone(),
                mfa.clone(),
                passkeys.clone(),
                LoginPolicy {
                    require_verified_email: settings.recovery.require_verified_email,
                    mfa_required: settings.mfa.required,
                    challenge_ttl: settings.mfa.token_ttl.delta(),
                },
            ),
            mfa,
            passkeys,
            recovery,
            outbox,
            mailer,
            sessions,
            retention: Retention::new(
                pool.clone(),
                settings.retention.audit_retention,
                settings.throttle.longest_window(),
                clock.clone(),
            ),
            pool,
            clock,
        }
    }

    /// The HTTP layer's parts: the services and the policies of HTTP.
    pub fn parts(&self, settings: &Settings) -> HttpParts {
        let secrets = &settings.secrets;
        let http = &settings.http;
        HttpParts {
            accounts: web::Data::new(self.accounts.clone()),
            login: web::Data::new(self.login.clone()),
            mfa: web::Data::new(self.mfa.clone()),
            passkeys: web::Data::new(self.passkeys.clone()),
            recovery: web::Data::new(self.recovery.clone()),
            auth: web::Data::new(Auth {
                sessions: self.sessions.clone(),
                tokens: TokenKeys::derive(&secrets.key, secrets.previous.as_ref()),
            }),
            origins: web::Data::new(OriginPolicy {
                public_origin: http.public_origin.clone(),
                cors_origins: http.cors_origins.clone(),
            }),
            cookies: web::Data::new(CookiePolicy::new(
                http.cookie_secure,
                http.clear_site_data,
                &secrets.key,
                secrets.previous.as_ref(),
            )),
            timeout: web::Data::new(ClientTimeout(http.client_timeout.std())),
            draining: web::Data::default(),
            proxies: web::Data::new(TrustedProxies {
                networks: http.trusted_proxies.clone(),
                header: http.client_ip_header,
            }),
            pool: web::Data::new(self.pool.clone()),
        }
    }
}

/// A pool of `size` connections on `DATABASE_URL`, `min_idle` kept warm.
pub fn pool(settings: &Settings, size: u32, min_idle: u32) -> PgPool {
    let database = &settings.database;
    db::pool(
        &database.url,
        PoolOptions {
            size,
            min_idle,
            timeout: database.timeout.std(),
            statement_timeout: database.statement_timeout.std(),
            pooled: database.pooled(),
        },
    )
}

/// Closes a pool off the async workers (it waits for connections being
/// opened).
pub async fn close(pool: PgPool, timeout: Duration) {
    tokio::task::spawn_blocking(move || db::close(pool, timeout))
        .await
        .ok();
}
