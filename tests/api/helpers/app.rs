//! The real application, started in the test process through the same code
//! as `main`, on a random port; its mail delivered, its clock moved and its
//! session activity written when the test says so.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use authd::clock::Clock;
use authd::configuration::{Bucket, SecretKey, Settings};
use authd::services::mail::Worker;
use authd::services::mail::outbox::Outcome;
use authd::services::sessions::Sessions;
use authd::startup::{Application, MailDelivery};

use super::{Server, TestDatabase, random_hex, secs};

/// The settings every test starts from: fast bcrypt, plain-http cookies, a
/// fixed key (so restarts keep sessions), the test's own database.
pub fn test_settings(database_url: String) -> Settings {
    let mut settings = Settings::from_vars(&HashMap::new()).expect("default settings");
    settings.database.url = database_url;
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.passwords.bcrypt_cost = 4;
    settings.http.cookie_secure = false;
    settings.secrets.key = SecretKey::new(b"test-secret-key-".repeat(4)).unwrap();
    settings.secrets.key_generated = false;
    settings.database.pool_size = 4;
    settings.database.timeout = secs(2);
    // Tests make many attempts from one address; the throttle tests set
    // their own limits.
    settings.throttle.set_limit(Bucket::LoginAccount, 1000);
    settings.throttle.set_limit(Bucket::LoginIp, 1000);
    settings.throttle.set_limit(Bucket::Registration, 1000);
    settings.throttle.login_in_flight_per_ip = 1000;
    settings
}

/// Keeps throttle counts in the test Redis (`TEST_REDIS_URL`, default
/// `redis://127.0.0.1:6379`), under a key prefix of this test process's
/// own: never shared with a local server, nor with another test run.
pub fn use_redis(settings: &mut Settings) {
    static PREFIX: LazyLock<String> = LazyLock::new(|| format!("authd-test-{}:", random_hex()));
    settings.throttle.redis_url = Some(
        std::env::var("TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
            .into(),
    );
    settings.throttle.redis_prefix = PREFIX.clone();
}

/// The application running in this process, and the parts of it a test
/// reaches into. Stopped when dropped.
pub struct Instance {
    /// Where its API is served.
    pub server: Server,
    /// Where `/metrics` is served, when the settings ask for it.
    pub metrics: Option<String>,
    handle: ServerHandle,
    clock: Clock,
    sessions: Sessions,
    /// Its mail worker, which delivers only when asked (none when account
    /// recovery is off).
    mail: Option<Worker>,
}

/// Starts the application with these settings, its mail delivered on
/// demand ([`TestApp::deliver_pending_mail`]).
pub async fn start(settings: Settings) -> Instance {
    static LOGS: LazyLock<()> = LazyLock::new(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            // Kept for the whole test process.
            std::mem::forget(authd::telemetry::init(
                authd::configuration::LogFormat::Pretty,
            ));
        }
    });
    LazyLock::force(&LOGS);
    let application = Application::build_with(settings, MailDelivery::OnDemand)
        .await
        .expect("start the app");
    let instance = Instance {
        server: Server::at(&format!("http://127.0.0.1:{}", application.port())),
        metrics: application
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}/metrics")),
        handle: application.handle(),
        clock: application.authd().clock().clone(),
        sessions: application.authd().sessions().clone(),
        mail: application.authd().mail().cloned(),
    };
    tokio::spawn(application.run_until_stopped());
    instance
}

impl Instance {
    /// Stops serving and waits until it has.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Stop accepting; the database's Drop then ends its connections.
        drop(self.handle.stop(false));
    }
}

/// The application on a database of the test's own, with what the test
/// needs to drive it: its actors (through `Deref` to its [`Server`]), its
/// database, its settings, its clock, its mail.
pub struct TestApp {
    /// First: stopped before the database is dropped.
    instance: Instance,
    /// Shared with sibling instances; dropped with the last of them.
    pub db: Arc<TestDatabase>,
    pub settings: Settings,
    /// How far this app's clock has been moved, so that a restart keeps
    /// the time.
    advanced: Mutex<Duration>,
}

impl Deref for TestApp {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.instance.server
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap();
        let mut settings = test_settings(db.url());
        configure(&mut settings);
        Self {
            instance: start(settings.clone()).await,
            db: Arc::new(db),
            settings,
            advanced: Mutex::default(),
        }
    }

    /// Another instance on the same database, as a load balancer would
    /// spread them; `configure` changes its settings from this one's. Its
    /// clock starts where this one's is, and moves on its own.
    pub async fn sibling(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let instance = start(settings.clone()).await;
        let advanced = *self.advanced.lock().unwrap();
        instance.clock.advance(advanced);
        Self {
            instance,
            db: self.db.clone(),
            settings,
            advanced: Mutex::new(advanced),
        }
    }

    /// Stops the server and starts a new one on the same database with
    /// changed settings, as an operator's restart would. Its actors follow
    /// it to its new port, and its clock keeps the time.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Settings)) {
        self.instance.stop().await;
        configure(&mut self.settings);
        let mut fresh = start(self.settings.clone()).await;
        self.instance.server.move_to(fresh.server.address());
        fresh.server = self.instance.server.clone();
        fresh.clock.advance(*self.advanced.lock().unwrap());
        self.instance = fresh;
    }

    /// The URL of `/metrics`, which the settings must have asked for.
    pub fn metrics_url(&self) -> &str {
        self.instance
            .metrics
            .as_deref()
            .expect("METRICS_BIND is set")
    }

    /// Moves this instance's clock forward: what its services take for now
    /// (session lifetimes and idle timeouts, throttle windows, mail retries
    /// and link lifetimes). Postgres's `now()` stays where it is, and so
    /// does the time cookie jars and the token library go by.
    pub fn advance(&self, by: Duration) {
        self.instance.clock.advance(by);
        *self.advanced.lock().unwrap() += by;
    }

    /// Delivers every mail due now, as the worker would, and returns what
    /// became of each; the mail server has stored each sent one by the
    /// time this returns.
    pub async fn deliver_pending_mail(&self) -> Vec<Outcome> {
        let worker = self
            .instance
            .mail
            .clone()
            .expect("account recovery is on: there is a mail worker");
        tokio::task::spawn_blocking(move || worker.deliver_due())
            .await
            .expect("the mail worker ran")
            .expect("the outbox could be read")
    }

    /// Writes the session activity noted so far (`last_seen_at`), as the
    /// background flush does at most a second later.
    pub async fn flush_activity(&self) {
        self.instance.sessions.flush_activity().await;
    }
}
