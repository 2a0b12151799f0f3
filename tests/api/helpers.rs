//! The test harness: each test gets its own Postgres database (cloned from a
//! migrated template, then dropped), the real application on a random port
//! started through the same code as `main`, and a cookie-keeping client
//! that plays the browser. Every response is checked against openapi.yaml.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use authd::configuration::{Bucket, Period, SecretKey, Settings};
use authd::startup::Application;
use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use reqwest_cookie_store::CookieStoreMutex;
use serde_json::{Value, json};

/// Where the tests find Postgres (trust auth); override with
/// `TEST_DATABASE_URL` (the server part only; the path is ignored).
fn server_url() -> url::Url {
    let raw = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    url::Url::parse(&raw).expect("TEST_DATABASE_URL is a URL")
}

fn database_url(name: &str) -> String {
    let mut url = server_url();
    url.set_path(&format!("/{name}"));
    // Loopback needs no TLS, and libpq's TLS state torn down at process exit
    // under live pool threads crashes the test process now and then.
    if url.query().is_none() {
        url.set_query(Some("sslmode=disable"));
    }
    url.to_string()
}

fn maintenance() -> PgConnection {
    PgConnection::establish(&database_url("postgres")).expect("connect to the test Postgres")
}

fn execute(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A template database with every migration applied, built once per
/// migration set and shared by all test processes; cloning it is much
/// faster than migrating a fresh database per test.
fn template() -> String {
    static NAME: LazyLock<String> = LazyLock::new(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = walk(std::path::Path::new(dir));
        files.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: stable across builds
        for (path, contents) in files {
            for byte in path.bytes().chain(contents) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
        let name = format!("authd_test_template_{hash:016x}");
        let mut conn = maintenance();
        // Serialise template creation across concurrently starting tests.
        execute(&mut conn, "SELECT pg_advisory_lock(7400)");
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut conn)
        .expect("query pg_database");
        if !exists {
            let building = format!("{name}_building");
            execute(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            );
            execute(&mut conn, &format!("CREATE DATABASE {building}"));
            authd::db::migrations::prepare(&database_url(&building)).expect("migrate the template");
            execute(
                &mut conn,
                &format!("ALTER DATABASE {building} RENAME TO {name}"),
            );
        }
        execute(&mut conn, "SELECT pg_advisory_unlock(7400)");
        name
    });
    NAME.clone()
}

fn walk(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read migrations") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            let contents = std::fs::read(&path).expect("read migration");
            out.push((path.display().to_string(), contents));
        }
    }
    out
}

/// A database of one test's own, dropped (connections and all) at the end.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        let template = template();
        let name = format!("authd_test_{}", uuid_like());
        let mut conn = maintenance();
        execute(
            &mut conn,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        );
        Self { name }
    }

    pub fn url(&self) -> String {
        database_url(&self.name)
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("connect to the test database")
    }

    /// Runs SQL against this test's database (test set-up and inspection).
    pub fn execute(&self, sql: &str) {
        execute(&mut self.connect(), sql);
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let mut conn = maintenance();
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn);
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

pub struct TestApp {
    pub address: String,
    /// Where `/metrics` is served, when the settings ask for it.
    pub metrics: Option<String>,
    /// Shared with sibling instances; dropped with the last of them.
    pub db: Arc<TestDatabase>,
    pub settings: Settings,
    handle: ServerHandle,
    pub cookies: Arc<CookieStoreMutex>,
    pub client: reqwest::Client,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as a login response.
    pub fn login_body(&self) -> Login {
        Login(self.json())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` value for `name`, if the response sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts a problem+json error with this status and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        for field in ["type", "title", "detail"] {
            assert!(body[field].is_string(), "problem lacks {field}: {body}");
        }
        body
    }
}

pub const PASSWORD: &str = "correct-horse-battery";

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
        let (address, metrics, handle) = start(settings.clone()).await;
        let cookies = Arc::new(CookieStoreMutex::default());
        Self {
            address,
            metrics,
            db: Arc::new(db),
            settings,
            handle,
            client: client(cookies.clone()),
            cookies,
        }
    }

    /// Another instance on the same database, as a load balancer would
    /// spread them, with its own browser; `configure` changes its settings
    /// from this one's.
    pub async fn sibling(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let (address, metrics, handle) = start(settings.clone()).await;
        let cookies = Arc::new(CookieStoreMutex::default());
        Self {
            address,
            metrics,
            db: self.db.clone(),
            settings,
            handle,
            client: client(cookies.clone()),
            cookies,
        }
    }

    /// Stops the server and starts a new one on the same database with
    /// changed settings, as an operator's restart would.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Settings)) {
        self.handle.stop(false).await;
        configure(&mut self.settings);
        let (address, metrics, handle) = start(self.settings.clone()).await;
        self.address = address;
        self.metrics = metrics;
        self.handle = handle;
    }

    /// A second client with its own cookie jar: another browser or device.
    pub fn new_browser(&self) -> (Arc<CookieStoreMutex>, reqwest::Client) {
        let cookies = Arc::new(CookieStoreMutex::default());
        (cookies.clone(), client(cookies))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request from the app's browser and checks the response
    /// against openapi.yaml before returning it.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        self.request_with(&self.client, method, path, body, headers)
            .await
    }

    pub async fn request_with(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = client.request(method.clone(), self.url(path));
        if let Some(body) = body {
            builder = builder.json(body);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        send(&method, path, builder).await
    }

    /// A request from a client with no cookies: another device, or an
    /// attacker replaying what it copied.
    pub async fn bare(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        self.request_with(&reqwest::Client::new(), method, path, body, headers)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.request(Method::POST, path, Some(body), &[]).await
    }

    /// A login attempt with this body from `client` (a browser of its own, say).
    pub async fn attempt_login(&self, client: &reqwest::Client, body: &Value) -> TestResponse {
        self.request_with(client, Method::POST, "/api/login", Some(body), &[])
            .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, None, &[]).await
    }

    /// A request with a bearer token and no cookies: an app's.
    pub async fn with_token(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.bare(method, path, body, &[("authorization", &auth)])
            .await
    }

    /// Asserts that `token` is refused within a second: how soon a change
    /// made elsewhere (another instance, the command line, plain SQL) must
    /// reach this instance's cache.
    pub async fn refused_within_a_second(&self, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let response = self.me_with_token(token).await;
            if response.status == StatusCode::UNAUTHORIZED {
                response.problem(401);
                return;
            }
            response.assert_status(200);
            assert!(Instant::now() < deadline, "still accepted a second later");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /api/me` with a bearer token and no cookies.
    pub async fn me_with_token(&self, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.bare(Method::GET, "/api/me", None, &[("authorization", &auth)])
            .await
    }

    /// `GET /api/me` from a client whose only cookie is this
    /// `authd_session` value: a copied or forged cookie.
    pub async fn me_with_cookie(&self, session: &str) -> TestResponse {
        let cookie = format!("authd_session={session}");
        self.bare(Method::GET, "/api/me", None, &[("cookie", &cookie)])
            .await
    }

    /// `GET /api/me` from `browser` (see [`TestApp::new_browser`]).
    pub async fn me_from(&self, browser: &reqwest::Client) -> TestResponse {
        self.request_with(browser, Method::GET, "/api/me", None, &[])
            .await
    }

    /// `POST /api/logout` with a bearer token and no cookies.
    pub async fn logout_with_token(&self, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.bare(
            Method::POST,
            "/api/logout",
            None,
            &[("authorization", &auth)],
        )
        .await
    }

    /// `POST /api/logout` from the app's browser, its cookie session
    /// authorised by the `X-CSRF-Token` header.
    pub async fn logout_with_cookie(&self, csrf: &str) -> TestResponse {
        self.request(Method::POST, "/api/logout", None, &[("x-csrf-token", csrf)])
            .await
    }

    /// Logs `username` in from `browser` (see [`TestApp::new_browser`]).
    pub async fn login_from(
        &self,
        browser: &reqwest::Client,
        username: &str,
        remember: bool,
    ) -> TestResponse {
        let body = json!({"username": username, "password": PASSWORD, "remember_me": remember});
        self.request_with(browser, Method::POST, "/api/login", Some(&body), &[])
            .await
    }

    pub async fn register(&self, username: &str, email: &str) -> TestResponse {
        self.post(
            "/api/register",
            &json!({"username": username, "email": email, "password": PASSWORD, "password2": PASSWORD}),
        )
        .await
    }

    /// Registers `username` with [`PASSWORD`], asserting it worked.
    pub async fn user(&self, username: &str) -> Value {
        let response = self
            .register(username, &format!("{username}@example.com"))
            .await;
        response.assert_status(201);
        response.json()
    }

    pub async fn login(&self, username: &str, remember: bool) -> TestResponse {
        self.post(
            "/api/login",
            &json!({"username": username, "password": PASSWORD, "remember_me": remember}),
        )
        .await
    }

    /// Registers and logs in; returns the login response body.
    pub async fn logged_in(&self, username: &str) -> Login {
        self.user(username).await;
        let response = self.login(username, false).await;
        response.assert_status(200);
        response.login_body()
    }

    /// Drops the cookies a browser forgets when it closes (those without
    /// `Max-Age` or `Expires`).
    pub fn restart_browser(&self) {
        let mut store = self.cookies.lock().unwrap();
        let persistent: Vec<_> = store
            .iter_unexpired()
            .filter(|cookie| cookie.is_persistent())
            .cloned()
            .collect();
        *store = cookie_store::CookieStore::from_cookies(
            persistent
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>),
            false,
        )
        .unwrap();
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let store = self.cookies.lock().unwrap();
        store
            .iter_unexpired()
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the database's Drop then ends its connections.
        drop(self.handle.stop(false));
    }
}

fn client(cookies: Arc<CookieStoreMutex>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Starts the app in this process: its address, its metrics URL, its handle.
pub async fn start(settings: Settings) -> (String, Option<String>, ServerHandle) {
    static LOGS: LazyLock<()> = LazyLock::new(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            // Kept for the whole test process.
            std::mem::forget(authd::telemetry::init(
                authd::configuration::LogFormat::Pretty,
            ));
        }
    });
    LazyLock::force(&LOGS);
    let application = Application::build(settings).await.expect("start the app");
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics = application
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}/metrics"));
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    (address, metrics, handle)
}

/// Shared with contract checks that need a response cache of compiled
/// validators; kept here so the harness owns all global state.
pub static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl TestApp {
    /// Logs `username` in from a new device of its own (a browser with its
    /// own jar, used here by token).
    pub async fn device(&self, username: &str, remember: bool) -> Login {
        let (_, browser) = self.new_browser();
        let response = self.login_from(&browser, username, remember).await;
        response.assert_status(200);
        response.login_body()
    }

    /// Registers `username` and logs it in from a device of its own.
    pub async fn device_of_new_user(&self, username: &str) -> Login {
        self.user(username).await;
        self.device(username, false).await
    }

    /// Logs `username` in from another browser; returns that session's CSRF token.
    pub async fn login_elsewhere(&self, username: &str) -> String {
        self.device(username, false).await.csrf().to_owned()
    }
}

impl TestApp {
    /// A request with a raw body, for inputs `reqwest`'s JSON helper cannot make.
    pub async fn raw_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> TestResponse {
        let mut builder = reqwest::Client::new()
            .request(method.clone(), self.url(path))
            .body(body);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        send(&method, path, builder).await
    }
}

/// Sends the request and checks the response against openapi.yaml.
async fn send(method: &Method, path: &str, builder: reqwest::RequestBuilder) -> TestResponse {
    let (client, request) = builder.build_split();
    let request = request.expect("a valid request");
    let preflight = method == Method::OPTIONS
        && request
            .headers()
            .contains_key("access-control-request-method");
    let response = client.execute(request).await.expect("request failed");
    let response = TestResponse {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("read body").to_vec(),
    };
    crate::contract::check(method, path, preflight, &response);
    response
}

impl TestDatabase {
    /// Lets new connections in, or not; existing ones are left alone.
    pub fn allow_connections(&self, allowed: bool) {
        execute(
            &mut maintenance(),
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allowed}",
                self.name
            ),
        );
    }

    /// Ends the connections to this database that carry `application_name`.
    pub fn terminate(&self, application_name: &str) {
        execute(
            &mut maintenance(),
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND application_name = '{application_name}'",
                self.name
            ),
        );
    }

    /// Simulates Postgres going away for this database (existing
    /// connections killed, new ones refused) and coming back.
    pub fn set_reachable(&self, reachable: bool) {
        let mut conn = maintenance();
        execute(
            &mut conn,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {reachable}",
                self.name
            ),
        );
        if !reachable {
            execute(
                &mut conn,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            );
        }
    }
}

impl TestApp {
    /// A browser (own cookie jar) whose requests come from `ip`, an address
    /// in 127.0.0.0/8: another client as the server sees it.
    pub fn browser_at(&self, ip: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_provider(Arc::new(CookieStoreMutex::default()))
            .local_address(ip.parse::<std::net::IpAddr>().expect("an IP address"))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

/// Keeps throttle counts in the test Redis (`TEST_REDIS_URL`, default
/// `redis://127.0.0.1:6379`), under a key prefix of this test process's
/// own: never shared with a local server, nor with another test run.
pub fn use_redis(settings: &mut Settings) {
    static PREFIX: LazyLock<String> = LazyLock::new(|| format!("authd-test-{}:", uuid_like()));
    settings.throttle.redis_url = Some(
        std::env::var("TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
            .into(),
    );
    settings.throttle.redis_prefix = PREFIX.clone();
}

/// Polls `check` every 50 ms until it gives a value, for at most 15
/// seconds; then fails, saying what was awaited and what `check` last saw.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "{what}: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain client of a server a test started by hand (the binary, or the
/// app on a database [`TestApp`] does not manage): bearer tokens only.
#[derive(Clone)]
pub struct Remote {
    pub address: String,
    client: reqwest::Client,
}

impl Remote {
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// `POST path` with a JSON body; the status.
    pub async fn post(&self, path: &str, body: &Value) -> StatusCode {
        let url = format!("{}{path}", self.address);
        let answer = self.client.post(url).json(body).send().await.unwrap();
        answer.status()
    }

    /// Registers `name` (`name@example.com`, [`PASSWORD`]); the status.
    pub async fn register(&self, name: &str) -> StatusCode {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "password2": PASSWORD});
        self.post("/api/register", &body).await
    }

    /// Logs `name` in with [`PASSWORD`]; its bearer token.
    pub async fn token(&self, name: &str) -> String {
        let url = format!("{}/api/login", self.address);
        let body = json!({"username": name, "password": PASSWORD});
        let answer = self.client.post(url).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), 200, "log in {name}");
        let login: Value = answer.json().await.unwrap();
        login["access_token"].as_str().unwrap().to_owned()
    }

    /// `method path` with a bearer token and no body; the status.
    pub async fn call(&self, method: Method, path: &str, token: &str) -> StatusCode {
        let url = format!("{}{path}", self.address);
        let request = self.client.request(method, url).bearer_auth(token);
        request.send().await.unwrap().status()
    }
}

/// A loopback port nothing listens on (the OS's pick, released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configured span of `seconds`.
pub fn secs(seconds: u32) -> Period {
    Period::from_secs(seconds).expect("a valid period")
}

/// A login response body: the session's bearer token and CSRF token, and
/// (through `Deref`) the rest of it, such as `user` or `expires_at`.
#[derive(Debug, Clone)]
pub struct Login(pub Value);

impl Login {
    /// The bearer token (`access_token`).
    pub fn token(&self) -> &str {
        self.0["access_token"]
            .as_str()
            .expect("a login response with an access_token")
    }

    /// The cookie session's CSRF token (`csrf_token`).
    pub fn csrf(&self) -> &str {
        self.0["csrf_token"]
            .as_str()
            .expect("a login response with a csrf_token")
    }

    /// The `Authorization` header for the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }
}

impl Deref for Login {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

/// The built `authd` binary, serving `db` on a free port of its own.
pub struct Process {
    pub child: std::process::Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

impl Process {
    pub async fn start(db: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("authd-test-{port}.log"));
        let output = std::fs::File::create(&log).expect("a log file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
        command
            .env_clear()
            .env("DATABASE_URL", db.url())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SECRET_KEY", "durability-test-secret-key-".repeat(3))
            .env("COOKIE_SECURE", "false")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::from(
                output.try_clone().expect("a log file"),
            ))
            .stderr(std::process::Stdio::from(output));
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the authd binary");
        let process = Self {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", process.address))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "authd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }
}

impl Process {
    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_term();
        self.child.wait().expect("the exit status")
    }

    /// Sends SIGTERM, without waiting for the process to exit.
    pub fn send_term(&self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
