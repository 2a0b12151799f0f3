//! Secrets never reach the logs: the server's own log output, captured at
//! debug level over every flow that handles a secret, must not contain any
//! password, hash, token, cookie or key the test used.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authd::configuration::LogFormat;
use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{PASSWORD, Process, TestApp, TestDatabase, free_port};
use authd::configuration::Bucket;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    /// Installs a JSON subscriber at `level` writing here (the server side
    /// only: the test's own HTTP client logs the cookies it stores).
    fn install(level: &str) -> Self {
        let capture = Self::default();
        let filter = EnvFilter::new(format!(
            "{level},cookie_store=off,reqwest=off,hyper_util=off,hyper=off"
        ));
        authd::telemetry::install(filter, LogFormat::Json, false, capture.clone());
        capture
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    // Everything the server side logs at debug.
    let capture = Capture::install("debug");
    tracing::info!("capture check");
    assert!(
        !capture.0.lock().unwrap().is_empty(),
        "another subscriber was installed first; this test needs its own process (nextest)"
    );

    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 2)).await;
    let browser = app.browser();
    app.user("susan").await;
    let wrong = "wrong-but-secret-guess-42";
    let rejected = "my-SUSAN2-password";
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": wrong}),
        )
        .await
        .problem(401);
    browser.post("/api/register", &json!({"username": "susan2", "email": "s2@example.com", "password": rejected, "password2": rejected}))
    .await
    .problem(422);
    let login = browser.login("susan", true).await.login_body();
    let token = login.token().to_owned();
    let csrf = login.csrf().to_owned();
    let cookie = browser.cookie("authd_session").unwrap();
    browser.get("/api/me").await.assert_status(200);
    app.bearer(&token).get("/api/me").await.assert_status(200);
    app.bearer(&format!("{token}x"))
        .get("/api/me")
        .await
        .problem(401);
    browser
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .problem(403);
    browser
        .request(Method::POST, "/api/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .assert_status(204);
    for _ in 0..3 {
        browser
            .post(
                "/api/login",
                &json!({"username": "susan", "password": wrong}),
            )
            .await;
    }
    let hash: String = authd::schema::users::table
        .select(authd::schema::users::password_hash)
        .first(&mut app.db.connect())
        .unwrap();
    drop(app);

    let logs = capture.text();
    assert!(
        logs.contains("login_failure") && logs.contains("login_success"),
        "audit events are logged"
    );
    let secret_key = String::from_utf8(app_secret()).unwrap();
    let cookie_decoded = cookie
        .replace("%2F", "/")
        .replace("%3D", "=")
        .replace("%2B", "+");
    let token_signature = token.rsplit('.').next().unwrap().to_owned();
    for (name, secret) in [
        ("password", PASSWORD),
        ("wrong password", wrong),
        ("rejected password", rejected),
        ("hash", hash.as_str()),
        ("bcrypt salt and digest", &hash[7..]),
        ("access token", token.as_str()),
        ("token signature", token_signature.as_str()),
        ("session cookie", cookie.as_str()),
        ("session cookie, decoded", cookie_decoded.as_str()),
        ("csrf token", csrf.as_str()),
        ("secret key", secret_key.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {name} appears in the logs");
    }
}

fn app_secret() -> Vec<u8> {
    crate::helpers::test_settings(String::new())
        .secrets
        .key
        .expose()
        .to_vec()
}

/// A stored hash bcrypt cannot read is a fault, not a wrong password: the
/// user gets a 500 (not a misleading 401 that would lock them out without
/// a trace), and the log says why, once, at error level.
#[tokio::test]
async fn a_corrupt_hash_is_a_logged_500_not_a_wrong_password() {
    let capture = Capture::install("info");
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    // Passes the table's `$2b$` check, but is no bcrypt hash.
    app.db
        .execute("UPDATE users SET password_hash = '$2b$12$corrupt'");
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": PASSWORD}),
        )
        .await
        .problem(500);
    drop(app);

    let logs = capture.text();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {errors:#?}");
    assert!(errors[0].contains("bcrypt"), "{}", errors[0]);
    assert!(
        errors[0].contains("/api/login"),
        "with its request: {}",
        errors[0]
    );
    assert!(!logs.contains(PASSWORD));
}

/// A token pasted into a query string (by mistake, or by an attacker
/// probing) is never written to the log: requests are logged by path.
#[tokio::test]
async fn nothing_from_a_query_reaches_the_log() {
    let capture = Capture::install("debug");
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let token = login.token().to_owned();
    for path in [
        format!("/api/me?access_token={token}"),
        format!("/api/me?{token}"),
        format!("/healthz?token={token}&next=/x"),
        format!("/nope?secret={token}"),
    ] {
        app.anonymous().get(&path).await;
    }
    drop(app);

    let logs = capture.text();
    let requests: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"message\":\"request\""))
        .collect();
    assert!(
        requests
            .iter()
            .any(|line| line.contains("\"path\":\"/api/me\"")),
        "requests are logged, by path: {requests:#?}"
    );
    assert!(!logs.contains(&token), "the token appears in the logs");
    assert!(
        !logs.contains("access_token="),
        "a query appears in the logs"
    );
}

/// The request log names the client authd believes in: the socket peer
/// unless it is a trusted proxy, never a forwarding header an untrusted
/// peer sent.
#[tokio::test]
async fn the_request_log_names_the_client_the_throttle_counts() {
    let capture = Capture::install("info");
    let app = TestApp::spawn().await;
    let spoofed = [
        ("x-forwarded-for", "198.51.100.66"),
        ("forwarded", "for=198.51.100.67"),
    ];
    app.anonymous()
        .request(Method::GET, "/healthz")
        .headers(&spoofed)
        .send()
        .await;
    drop(app);

    let logs = capture.text();
    let line = logs
        .lines()
        .find(|line| line.contains("\"message\":\"request\"") && line.contains("/healthz"))
        .expect("the request is logged");
    assert!(line.contains("\"client_ip\":\"127.0.0.1\""), "{line}");
    assert!(!logs.contains("198.51.100.66") && !logs.contains("198.51.100.67"));
}

/// One line per request at `info`, client errors included: method, route
/// template, status, duration and request id (the caller's, echoed, or a
/// new one), and on an authenticated request who made it.
#[tokio::test]
async fn each_request_is_one_line_with_its_id_and_who_made_it() {
    let capture = Capture::install("info");
    let app = TestApp::spawn().await;
    let (susan, login) = app.logged_in_app("susan").await;
    let echoed = susan
        .request(Method::GET, "/api/me")
        .header("x-request-id", "trace-42.a:b")
        .send()
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-42.a:b"));
    let made = app
        .anonymous()
        .request(Method::GET, "/api/nope")
        .header("x-request-id", "not a valid id!")
        .send()
        .await;
    let made_id = made.header("x-request-id").unwrap().to_owned();
    assert_eq!(made_id.len(), 32, "{made_id}");
    let sessions = susan.get("/api/sessions").await.json();
    let public_id = sessions[0]["id"].as_str().unwrap().to_owned();
    drop(app);

    let logs = capture.text();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"message\":\"request\""))
        .collect();
    let me = lines
        .iter()
        .find(|line| line.contains("trace-42.a:b"))
        .expect("the request is logged under the caller's id");
    for field in [
        "\"method\":\"GET\"",
        "\"route\":\"/api/me\"",
        "\"status\":200",
        "\"duration_ms\":",
        "\"user_id\":1",
    ] {
        assert!(me.contains(field), "{field} in {me}");
    }
    assert!(
        me.contains(&public_id),
        "the session by its public id: {me}"
    );
    // In milliseconds to the microsecond, not a binary fraction's digits.
    let duration = me
        .split("\"duration_ms\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .expect("a duration");
    let decimals = duration.split('.').nth(1).unwrap_or_default();
    assert!(
        duration.parse::<f64>().is_ok() && decimals.len() <= 3,
        "duration_ms {duration} in {me}"
    );
    assert!(!me.contains(login.token()));
    let not_found = lines
        .iter()
        .find(|line| line.contains(&made_id))
        .expect("a 404 is logged too");
    assert!(not_found.contains("\"level\":\"INFO\""), "{not_found}");
    assert!(not_found.contains("\"status\":404"), "{not_found}");
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"WARN\"") && line.contains("\"request"))
        .collect();
    assert!(
        warnings.is_empty(),
        "client errors are not warnings: {warnings:#?}"
    );
}

/// Malformed requests (both Content-Length and Transfer-Encoding, an
/// obsolete line fold, a control byte in a header value) are the client's
/// mistake: each is a 400, and the server's log, where an operator looks
/// for faults, gets no ERROR or WARN line from them (anyone could write
/// those).
#[tokio::test]
async fn malformed_requests_are_400s_that_log_no_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDatabase::create();
    // Without recovery and notices there is no missing mail server to warn
    // about: a start-up that logs nothing at WARN.
    let quiet = [
        ("ACCOUNT_RECOVERY", "false"),
        ("SECURITY_NOTIFICATIONS", "false"),
    ];
    let mut server = Process::start(&db, &quiet).await;
    let address = server.address.trim_start_matches("http://").to_owned();
    for request in [
        &b"POST /api/login HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\n\
           Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: authd\r\nX-Folded: one\r\n two\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: authd\r\nX-Control: a\x01b\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("an answer, and the connection closed")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
    // Once it has exited, everything it logged is in the file.
    assert!(server.terminate().success());
    let log = std::fs::read_to_string(&server.log).unwrap();
    let loud: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("ERROR") || line.contains("WARN"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

/// A stdout that takes nothing (a log shipper that stalled, a pipe nobody
/// reads) costs log lines, counted, not answers: once 8 MiB of lines
/// waited, every request used to wait with them, `/readyz` included.
#[tokio::test]
async fn a_stdout_that_takes_nothing_costs_log_lines_not_answers() {
    let db = TestDatabase::create();
    let (_unread, stdout) = std::io::pipe().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Process::start_with_stdout(
        &db,
        &[("RUST_LOG", "info"), ("METRICS_BIND", &metrics)],
        stdout.into(),
    )
    .await;
    // The path is logged whole: 4 KiB lines, 16 MiB of them, past the
    // pipe's buffer and the queue.
    let url = format!("{}/api/{}", server.address, "x".repeat(4096));
    let client = reqwest::Client::new();
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..512 {
                    let answer =
                        tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
                            .await
                            .expect("an answer within 5 s")
                            .unwrap();
                    assert_eq!(answer.status(), 404);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let ready = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("{}/readyz", server.address)).send(),
    )
    .await
    .expect("/readyz answered within 5 s")
    .unwrap();
    assert_eq!(ready.status(), 200);
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("authd_log_lines_dropped_total "))
        .expect("the counter of dropped lines")
        .parse()
        .unwrap();
    // 4,096 lines, of which 8 MiB and the pipe's 64 KiB fit: most dropped.
    assert!(dropped > 1_000.0, "{dropped} lines dropped");
}
