//! Exits and shutdown: exit codes of failed starts and of shutdowns, the
//! requests in flight at SIGTERM, and readiness while draining.

use std::time::{Duration, Instant};

use actix_web::test as actix_test;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Process, TestDatabase, test_settings};

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
        process.server().anonymous().get("/readyz").await;
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
    // One client, so one connection kept open, as a load balancer's.
    let balancer = process.server().anonymous();
    let ready = balancer.get("/readyz").await;
    assert_eq!(ready.status, 200);
    let body = json!({"username": "susan", "email": "susan@example.com", "password": PASSWORD, "password2": PASSWORD});
    let registration = process
        .server()
        .anonymous()
        .request(Method::POST, "/api/register")
        .json(&body);
    let in_flight = tokio::spawn(async move {
        registration
            .try_send()
            .await
            .map(|response| response.status.as_u16())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    process.send_term();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = balancer.get("/readyz").await;
    assert_eq!(draining.status, 503);
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
