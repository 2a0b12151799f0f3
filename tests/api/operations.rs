//! Running authd: metrics, exits and shutdown, several instances on one
//! database, and the faults it must survive (a slow query, an exhausted
//! pool, Postgres restarting, PgBouncer in front of it).

use std::time::{Duration, Instant};

use actix_web::test as actix_test;
use diesel::RunQueryDsl;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Process, Remote, TestApp, TestDatabase, secs, test_settings};
use authd::configuration::Bucket;

/// `GET /metrics` answers on its own listener, in Prometheus' text format,
/// with what an operator watches; the API's port does not serve it.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = TestApp::spawn_with(|s| {
        s.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        s.throttle.set_limit(Bucket::LoginAccount, 1);
    })
    .await;
    let login = app.device_of_new_user("susan").await;
    let (_, browser) = app.new_browser();
    let wrong = json!({"username": "susan", "password": "wrong-guess-123"});
    app.attempt_login(&browser, &wrong).await.problem(401);
    app.attempt_login(&browser, &wrong).await.problem(429);
    app.register("olga", "olga@example.com")
        .await
        .assert_status(201);
    app.db
        .execute("UPDATE users SET is_active = false WHERE username = 'olga'");
    let olga = json!({"username": "olga", "password": PASSWORD});
    app.attempt_login(&browser, &olga).await.problem(403);
    let list = app
        .with_token(Method::GET, "/api/sessions", None, login.token())
        .await
        .json();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    app.with_token(
        Method::DELETE,
        &format!("/api/sessions/{id}"),
        None,
        login.token(),
    )
    .await
    .assert_status(204);
    app.get("/metrics").await.problem(404);
    let invented = Method::from_bytes(b"INVENTED").unwrap();
    app.request(invented, "/api/me", None, &[])
        .await
        .problem(405);

    let scraped = reqwest::get(app.metrics.as_deref().unwrap()).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = scraped.text().await.unwrap();
    let head = reqwest::Client::new()
        .head(app.metrics.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.text().await.unwrap().is_empty());
    for line in [
        r#"authd_logins_total{outcome="success"} 1"#,
        r#"authd_logins_total{outcome="failure"} 1"#,
        r#"authd_logins_total{outcome="throttled"} 1"#,
        r#"authd_logins_total{outcome="inactive"} 1"#,
        r#"authd_registrations_total{outcome="created"} 2"#,
        "authd_sessions_created_total 1",
        "authd_sessions_revoked_total 1",
        // By route template: never the session id in the path.
        r#"authd_http_requests_total{method="DELETE",route="/api/sessions/{id}",status="204"} 1"#,
        r#"authd_http_requests_total{method="POST",route="/api/login",status="401"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    for name in [
        "authd_http_request_duration_seconds_bucket",
        "authd_db_pool_max_connections",
        "authd_db_pool_connections",
        "authd_mail_outbox_depth",
        "authd_db_pool_idle_connections",
        "authd_db_pool_waiting",
        "authd_blocking_tasks",
        "authd_hash_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(!text.contains(&id), "a session id in the metrics");
    // Any token is a method to actix; the label keeps to a fixed few.
    assert!(!text.contains("INVENTED"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
}

/// A failed start and a shutdown end with their exit codes (1, 0), never a
/// signal, however often: the process never exits while a connection is
/// being opened.
#[tokio::test]
async fn failed_starts_and_shutdowns_exit_cleanly_every_time() {
    let db = TestDatabase::create();
    let mut running = Process::start(&db, &[]).await;
    let taken = running.address.trim_start_matches("http://").to_owned();
    // Half fail before any connection opens (the port is taken), half after
    // the pool has begun opening them (Redis cannot be reached).
    for n in 0..12 {
        let (bind, redis) = match n % 2 {
            0 => (taken.clone(), None),
            _ => ("127.0.0.1:0".to_owned(), Some("redis://127.0.0.1:1")),
        };
        let status = tokio::task::spawn_blocking({
            let url = db.url();
            move || {
                let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
                command.env_clear();
                if let Some(redis) = redis {
                    command.env("REDIS_URL", redis);
                }
                command
                    .env("DATABASE_URL", url)
                    .env("BIND", bind)
                    .env("RUST_LOG", "off")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert_eq!(status.code(), Some(1), "a failed start: {status:?}");
    }
    assert_eq!(running.terminate().code(), Some(0));
    for _ in 0..5 {
        let mut process = Process::start(&db, &[]).await;
        reqwest::get(format!("{}/readyz", process.address))
            .await
            .unwrap();
        let status = process.terminate();
        assert_eq!(status.code(), Some(0), "a shutdown: {status:?}");
    }
}

/// SIGTERM lets requests in flight finish, then exits 0; meanwhile a load
/// balancer's open connection sees `/readyz` answer 503. The log written to
/// a file carries no colour codes.
#[tokio::test]
async fn shutdown_finishes_the_requests_in_flight() {
    let db = TestDatabase::create();
    let mut process = Process::start(&db, &[("BCRYPT_COST", "13"), ("RUST_LOG", "info")]).await;
    let balancer = reqwest::Client::new();
    let readyz = format!("{}/readyz", process.address);
    let ready = balancer.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let url = format!("{}/api/register", process.address);
    let body = json!({"username": "susan", "email": "susan@example.com", "password": PASSWORD, "password2": PASSWORD});
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .map(|response| response.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    process.send_term();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = balancer.get(&readyz).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    assert_eq!(in_flight.await.unwrap().unwrap(), 201);
    let status = tokio::task::spawn_blocking(move || {
        let status = process.child.wait().unwrap();
        (status, std::fs::read_to_string(&process.log).unwrap())
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert_eq!(status.code(), Some(0));
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {log:?}"
    );
}

/// A request in flight at the signal that outlasts `SHUTDOWN_TIMEOUT` is
/// cut off: the process still exits 0, and on time.
#[tokio::test]
async fn shutdown_cuts_off_what_outlasts_the_timeout() {
    use std::io::Write;
    let db = TestDatabase::create();
    let mut process = Process::start(
        &db,
        &[("SHUTDOWN_TIMEOUT", "1s"), ("CLIENT_TIMEOUT", "60s")],
    )
    .await;
    let address = process.address.trim_start_matches("http://").to_owned();
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    stalled
        .write_all(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || process.terminate())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a stalled request held shutdown for {:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// Once shutdown begins, the instance is not ready: `/readyz` answers 503
/// (the signal handler sets this before it stops the listener).
#[actix_web::test]
async fn readyz_is_503_once_shutdown_begins() {
    let settings = test_settings("postgres://127.0.0.1:1/unused".into());
    let hasher = authd::services::passwords::PasswordHasher::start(4, 1).unwrap();
    let pool = authd::db::pool(
        &settings.database.url,
        authd::db::PoolOptions {
            size: 1,
            min_idle: 0,
            timeout: Duration::from_millis(100),
            statement_timeout: Duration::from_secs(1),
            pooled: false,
        },
    );
    let store = authd::services::throttle::postgres::PostgresStore::new(pool.clone());
    let throttle = authd::services::throttle::Throttle::new(store, [0; 32], Default::default());
    let mailer = authd::services::mail::Mailer::new(&settings.mail).unwrap();
    let parts = authd::startup::Services::wire(
        &settings,
        pool,
        hasher,
        throttle,
        mailer,
        Default::default(),
    )
    .parts(&settings);
    parts.draining.begin();
    let app = actix_test::init_service(parts.app(|_| {})).await;
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/readyz").to_request(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["type"], "urn:authd:problem:shutting-down");
}

/// Two instances on one database behave as one service: what one does,
/// the other honours.
#[tokio::test]
async fn two_instances_share_accounts_sessions_and_counts() {
    let a = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 2)).await;
    let b = a.sibling(|_| {}).await;
    a.register("susan", "susan@example.com")
        .await
        .assert_status(201);
    let login = b.login("susan", false).await.login_body();
    let cookie = b.cookie("authd_session").unwrap();
    a.me_with_token(login.token()).await.assert_status(200);
    a.me_with_cookie(&cookie).await.assert_status(200);
    a.logout_with_token(login.token()).await.assert_status(204);
    b.refused_within_a_second(login.token()).await;
    b.me_with_cookie(&cookie).await.problem(401);

    let (_, browser) = a.new_browser();
    let wrong = json!({"username": "susan", "password": "wrong-guess-123"});
    a.attempt_login(&browser, &wrong).await.problem(401);
    b.attempt_login(&browser, &wrong).await.problem(401);
    let right = json!({"username": "susan", "password": PASSWORD});
    a.attempt_login(&browser, &right).await.problem(429);
}

/// A query blocked behind a lock is cancelled at DB_STATEMENT_TIMEOUT, and
/// requests queued for the one connection it holds give up at DB_TIMEOUT:
/// quick 503s with Retry-After, never a hang or a 500.
#[tokio::test]
async fn a_blocked_query_and_an_exhausted_pool_are_quick_503s() {
    let app = TestApp::spawn_with(|s| {
        s.database.pool_size = 1;
        s.database.timeout = secs(1);
        s.database.statement_timeout = secs(2);
    })
    .await;
    app.user("susan").await;
    let mut blocker = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .unwrap();
    let started = Instant::now();
    let login = async {
        let (_, browser) = app.new_browser();
        let body = json!({"username": "susan", "password": PASSWORD});
        let response = app.attempt_login(&browser, &body).await;
        (response, started.elapsed())
    };
    let register = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, browser) = app.new_browser();
        let body = json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "password2": PASSWORD});
        let response = app
            .request_with(&browser, Method::POST, "/api/register", Some(&body), &[])
            .await;
        (response, started.elapsed())
    };
    let ((login, login_took), (register, register_took)) = tokio::join!(login, register);
    for (response, took) in [(&login, login_took), (&register, register_took)] {
        response.problem(503);
        assert!(response.header("retry-after").is_some());
        assert!(took < Duration::from_secs(4), "took {took:?}");
    }
    diesel::sql_query("ROLLBACK").execute(&mut blocker).unwrap();
    app.login("susan", false).await.assert_status(200);
}

/// A Postgres of the test's own, in a temporary directory, to stop and
/// start: the shared one is never touched.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("pg_ctl");
        let port = crate::helpers::free_port();
        let dir = std::env::temp_dir().join(format!("authd-pg-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let postgres = Self { dir, bin, port };
        postgres.as_owner(&["chown", "-R", "postgres:postgres"], true);
        postgres.pg(&["initdb", "-D", "data", "-A", "trust", "-U", "postgres"]);
        postgres.ctl("start");
        postgres
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Root cannot run Postgres: run its tools as `postgres` then.
    fn as_owner(&self, command: &[&str], only_as_root: bool) {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0"));
        let mut full: Vec<String> = Vec::new();
        if root && !only_as_root {
            full.extend(["runuser", "-u", "postgres", "--"].map(String::from));
        }
        if only_as_root && !root {
            return;
        }
        full.extend(command.iter().map(ToString::to_string));
        if only_as_root {
            full.push(self.dir.display().to_string());
        }
        let status = std::process::Command::new(&full[0])
            .args(&full[1..])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{full:?}");
    }

    fn pg(&self, args: &[&str]) {
        let program = self.bin.join(args[0]).display().to_string();
        let mut command = vec![program.as_str()];
        command.extend(&args[1..]);
        self.as_owner(&command, false);
    }

    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        match action {
            "start" => self.pg(&[
                "pg_ctl", "-D", "data", "-o", &options, "-l", "log", "-w", "start",
            ]),
            _ => self.pg(&["pg_ctl", "-D", "data", "-m", "fast", "-w", "stop"]),
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl").display().to_string();
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &program,
                "-D",
                "data",
                "-m",
                "immediate",
                "stop",
            ])
            .current_dir(&self.dir)
            .output();
        let _ = std::process::Command::new(&program)
            .args(["-D", "data", "-m", "immediate", "stop"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Postgres restarted under load: requests meanwhile get quick 503s (never
/// a 500, never a hang past the pool timeout), and the service heals by
/// itself within seconds.
#[tokio::test]
async fn a_postgres_restart_gives_quick_503s_and_heals() {
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap();
    let mut settings = test_settings(postgres.url("authd"));
    settings.database.timeout = secs(1);
    let (address, _, handle) = crate::helpers::start(settings).await;
    let remote = Remote::new(&address);
    assert_eq!(remote.register("susan").await, 201);
    let token = remote.token("susan").await;

    let load = {
        let (remote, token) = (remote.clone(), token.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                let started = Instant::now();
                let me = remote.call(Method::GET, "/api/me", &token).await;
                seen.push((me.as_u16(), started.elapsed()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    tokio::task::spawn_blocking({
        let dir = postgres.dir.clone();
        let bin = postgres.bin.clone();
        let port = postgres.port;
        move || {
            let pg = PrivatePostgres { dir, bin, port };
            pg.ctl("stop");
            std::thread::sleep(Duration::from_secs(2));
            pg.ctl("start");
            std::mem::forget(pg);
        }
    })
    .await
    .unwrap();
    let seen = load.await.unwrap();
    assert!(
        seen.iter().any(|(status, _)| *status == 503),
        "the outage was seen: {seen:?}"
    );
    for (status, took) in &seen {
        assert!(matches!(status, 200 | 503), "{status}: {seen:?}");
        assert!(*took < Duration::from_secs(3), "a request took {took:?}");
    }
    let healed = loop {
        let ready = remote.call(Method::GET, "/readyz", &token).await;
        let me = remote.call(Method::GET, "/api/me", &token).await;
        if ready == 200 && me == 200 {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < Duration::from_secs(20), "never healed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(healed < Duration::from_secs(15), "healed after {healed:?}");
    handle.stop(false).await;
}

/// Behind PgBouncer in transaction mode (DATABASE_URL through it, the
/// direct URL for migrations and LISTEN), every flow works: no session
/// state on pooled connections, no prepared-statement surprises.
#[tokio::test]
async fn it_works_behind_pgbouncer_in_transaction_mode() {
    let bouncer = tokio::task::spawn_blocking(PgBouncer::start).await.unwrap();
    let direct = TestDatabase::create();
    let pooled = bouncer.url(&direct.name);
    let mut settings = test_settings(pooled);
    settings.database.direct_url = Some(direct.url());
    settings.throttle.set_limit(Bucket::LoginAccount, 2);
    let (address, _, handle) = crate::helpers::start(settings).await;
    let remote = Remote::new(&address);
    for round in 0..3 {
        let name = format!("susan{round}");
        assert_eq!(remote.register(&name).await, 201, "round {round}");
        let token = remote.token(&name).await;
        for path in ["/api/me", "/api/sessions"] {
            assert_eq!(remote.call(Method::GET, path, &token).await, 200, "{path}");
        }
        let wrong = json!({"username": name, "password": "wrong-guess-123"});
        for expected in [401, 401, 429] {
            assert_eq!(remote.post("/api/login", &wrong).await, expected);
        }
        assert_eq!(remote.call(Method::POST, "/api/logout", &token).await, 204);
        assert_eq!(remote.call(Method::GET, "/api/me", &token).await, 401);
    }
    handle.stop(false).await;
}

/// A PgBouncer of the test's own, in transaction mode, in front of the
/// shared Postgres.
struct PgBouncer {
    dir: std::path::PathBuf,
    port: u16,
    child: std::process::Child,
}

impl PgBouncer {
    fn start() -> Self {
        let port = crate::helpers::free_port();
        let dir = std::env::temp_dir().join(format!("authd-pgbouncer-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {dir}/users.txt\npool_mode = transaction\n\
                 default_pool_size = 4\nmax_client_conn = 100\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0"));
        let mut command = if root {
            let _ = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--", "pgbouncer"]);
            command
        } else {
            std::process::Command::new("pgbouncer")
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pgbouncer (scripts/ensure-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "pgbouncer did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { dir, port, child }
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-f", &self.dir.join("pgbouncer.ini").display().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
