//! Postgres faults: an outage, a blocked query and an exhausted pool, a
//! restart under load; and PgBouncer in front of it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, TestDatabase, own_status, secs, start, test_settings};
use authd::configuration::Bucket;

/// Postgres going away mid-flight (connections killed, new ones refused)
/// must give quick 503s, not hangs or 500s, and the service must heal by
/// itself when Postgres is back.
#[tokio::test]
async fn a_database_outage_gives_quick_503s_and_heals() {
    let app = TestApp::spawn_with(|s| s.database.timeout = secs(1)).await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let susan = app.bearer(login.token());

    app.db.set_reachable(false);
    let started = Instant::now();
    let other = json!({"username": "other", "email": "other@example.com", "password": PASSWORD, "password2": PASSWORD});
    let responses = [
        browser.get("/readyz").await,
        susan.get("/api/me").await,
        browser
            .post(
                "/api/login",
                &json!({"username": "susan", "password": PASSWORD}),
            )
            .await,
        browser.post("/api/register", &other).await,
        browser.get("/api/me").await,
    ];
    for response in &responses {
        response.problem(503);
        assert!(response.header("retry-after").is_some());
    }
    // Each request waits at most DB_TIMEOUT (1 s here) for a connection.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    browser.get("/healthz").await.assert_status(200);

    app.db.set_reachable(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = browser.get("/readyz").await;
        if ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: {}",
            ready.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    susan.get("/api/me").await.assert_status(200);
    browser.get("/api/me").await.assert_status(200);
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
        let browser = app.browser();
        let body = json!({"username": "susan", "password": PASSWORD});
        let response = browser.post("/api/login", &body).await;
        (response, started.elapsed())
    };
    let register = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let browser = app.browser();
        let body = json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "password2": PASSWORD});
        let response = browser.post("/api/register", &body).await;
        (response, started.elapsed())
    };
    let ((login, login_took), (register, register_took)) = tokio::join!(login, register);
    for (response, took) in [(&login, login_took), (&register, register_took)] {
        response.problem(503);
        assert!(response.header("retry-after").is_some());
        assert!(took < Duration::from_secs(4), "took {took:?}");
    }
    diesel::sql_query("ROLLBACK").execute(&mut blocker).unwrap();
    app.browser().login("susan", false).await.assert_status(200);
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
    let instance = start(settings).await;
    instance.server.user("susan").await;
    let (susan, _) = instance.server.app_login("susan", false).await;

    // Until two seconds after Postgres is back.
    let until = Arc::new(Mutex::new(None::<Instant>));
    let load = {
        let (susan, until) = (susan.clone(), until.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while until
                .lock()
                .unwrap()
                .is_none_or(|until| Instant::now() < until)
            {
                let started = Instant::now();
                let me = susan.get("/api/me").await;
                seen.push((me.status.as_u16(), started.elapsed()));
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
            std::thread::sleep(Duration::from_secs(1));
            pg.ctl("start");
            std::mem::forget(pg);
        }
    })
    .await
    .unwrap();
    *until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(2));
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
        let ready = susan.get("/readyz").await.status;
        let me = susan.get("/api/me").await.status;
        if ready == 200 && me == 200 {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < Duration::from_secs(20), "never healed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(healed < Duration::from_secs(15), "healed after {healed:?}");
    instance.stop().await;
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
    let instance = start(settings).await;
    let server = &instance.server;
    for round in 0..3 {
        let name = format!("susan{round}");
        let registered = server.register(&name, &format!("{name}@example.com")).await;
        assert_eq!(registered.status, 201, "round {round}");
        let (app, _) = server.app_login(&name, false).await;
        for path in ["/api/me", "/api/sessions"] {
            assert_eq!(app.get(path).await.status, 200, "{path}");
        }
        let wrong = json!({"username": name, "password": "wrong-guess-123"});
        for expected in [401, 401, 429] {
            let attempt = server.anonymous().post("/api/login", &wrong).await;
            assert_eq!(attempt.status, expected);
        }
        let logout = app.request(Method::POST, "/api/logout").send().await;
        assert_eq!(logout.status, 204);
        assert_eq!(app.get("/api/me").await.status, 401);
    }
    instance.stop().await;
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
            .expect("pgbouncer (scripts/test-deps.sh installs it)");
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

/// A fresh database, and a pool of `size` connections to it, all kept
/// open, with `timeout` for a connection and for a statement.
async fn database_and_pool(size: u32, timeout: Duration) -> (TestDatabase, authd::db::PgPool) {
    let db = tokio::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    let pool = authd::db::pool(
        &db.url(),
        authd::db::PoolOptions {
            size,
            min_idle: size,
            timeout,
            statement_timeout: timeout,
            pooled: false,
        },
    );
    (db, pool)
}

/// Requests queued for the pool wait without a thread each: only as many
/// database calls as the pool has connections hold a blocking thread.
/// (Each waiting call held one, and under load at a million users their
/// number passed a hundred, each with memory of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_for_the_pool_hold_no_thread() {
    let (_db, pool) = database_and_pool(2, Duration::from_secs(10)).await;
    let ping = |pool| authd::db::run(pool, |c| diesel::sql_query("SELECT 1").execute(c));
    // Both connections open, and the blocking threads that used them.
    tokio::join!(ping(&pool), ping(&pool)).0.unwrap();
    let threads = || own_status("Threads");
    let before = threads();
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                authd::db::run(&pool, |c| {
                    diesel::sql_query("SELECT pg_sleep(0.05)").execute(c)
                })
                .await
            })
        })
        .collect();
    let mut most = before;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        most = most.max(threads());
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert!(
        most <= before + 2,
        "{} threads beside {before} while 24 calls queued for 2 connections",
        most - before
    );
}

/// Ends every other connection to `db`, and waits until they are gone.
fn close_connections(db: &TestDatabase) {
    #[derive(diesel::QueryableByName)]
    struct Others {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let others = "FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let mut conn = db.connect();
    diesel::sql_query(format!("SELECT pg_terminate_backend(pid) {others}"))
        .execute(&mut conn)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while diesel::sql_query(format!("SELECT count(*) AS count {others}"))
        .get_result::<Others>(&mut conn)
        .unwrap()
        .count
        > 0
    {
        assert!(Instant::now() < deadline, "the connections did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pool lends a connection without pinging it first: one the server
/// has closed fails the one call that finds it, as unavailable (a 503,
/// not a fault), and is dropped, so the next call gets a new one; both for
/// a statement prepared on it before and for one new to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_fails_one_call_and_is_dropped() {
    use authd::db::DbError;
    use authd::schema::users;
    use diesel::QueryDsl;

    let (db, pool) = database_and_pool(1, Duration::from_secs(5)).await;
    let count = || authd::db::run(&pool, |c| users::table.count().get_result::<i64>(c));
    let any = || {
        authd::db::run(&pool, |c| {
            users::table
                .select(users::username)
                .limit(1)
                .load::<String>(c)
        })
    };
    count().await.unwrap();

    close_connections(&db);
    let failed = count().await;
    assert!(matches!(failed, Err(DbError::Unavailable(_))), "{failed:?}");
    count().await.unwrap();

    close_connections(&db);
    let failed = any().await;
    assert!(matches!(failed, Err(DbError::Unavailable(_))), "{failed:?}");
    any().await.unwrap();
    count().await.unwrap();
}
