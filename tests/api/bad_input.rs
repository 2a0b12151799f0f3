//! Malformed requests: bad JSON, wrong media types, oversized bodies,
//! unknown routes and wrong methods get the right 4xx.

use reqwest::Method;
use serde_json::json;

use std::time::Duration;

use crate::helpers::{PASSWORD, TestApp, secs};

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> crate::helpers::TestResponse {
    let mut request = app.anonymous().request(method, path).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    for body in [
        &b"{"[..],
        b"{\"username\": }",
        b"not json",
        b"",
        b"{\"a\":1}{",
    ] {
        for path in ["/api/register", "/api/login"] {
            raw(
                &app,
                Method::POST,
                path,
                Some("application/json"),
                body.to_vec(),
            )
            .await
            .problem(400);
        }
    }
}

/// serde_json keeps the last of two keys, but a proxy, a WAF or a log in
/// front of authd may read the first: a body that two parsers could read
/// apart is refused before anything acts on it. Each body below would
/// otherwise do what its last key says.
#[tokio::test]
async fn a_key_given_twice_is_400_and_nothing_happens() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let (phone, _) = app.app_login("susan", false).await;
    app.user("bob").await;
    let new = "purple-monkey-dishwasher";
    let twice = |actor: &crate::helpers::Actor, method: Method, path: &str, body: String| {
        actor
            .request(method, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let login = format!(r#"{{"username": "bob", "username": "susan", "password": "{PASSWORD}"}}"#);
    let problem = twice(&app.anonymous(), Method::POST, "/api/login", login)
        .await
        .problem(400);
    assert_eq!(problem["type"], "urn:authd:problem:malformed-json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate key `username`"),
        "{problem}"
    );

    let change = format!(
        r#"{{"current_password": "wrong-guess-123", "current_password": "{PASSWORD}", "new_password": "{new}", "new_password2": "{new}"}}"#
    );
    twice(&susan, Method::POST, "/api/me/password", change)
        .await
        .problem(400);
    let rename = format!(
        r#"{{"username": "susan_b", "current_password": "wrong-guess-123", "current_password": "{PASSWORD}"}}"#
    );
    twice(&susan, Method::PATCH, "/api/me", rename)
        .await
        .problem(400);
    let logout = r#"{"scope": "local", "scope": "global"}"#.to_owned();
    twice(&susan, Method::POST, "/api/logout", logout)
        .await
        .problem(400);

    // Still susan, with her password, and both her sessions.
    assert_eq!(susan.get("/api/me").await.json()["username"], "susan");
    phone.get("/api/me").await.assert_status(200);
    app.anonymous()
        .login("susan", false)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = TestApp::spawn().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        raw(
            &app,
            Method::POST,
            "/api/login",
            content_type,
            b"username=a&password=b".to_vec(),
        )
        .await
        .problem(415);
    }
    // A JSON-suffixed media type and parameters are fine.
    raw(
        &app,
        Method::POST,
        "/api/login",
        Some("application/json; charset=utf-8"),
        b"{}".to_vec(),
    )
    .await
    .problem(422);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let big = json!({"username": "x".repeat(70 * 1024), "password": "y"});
    let response = raw(
        &app,
        Method::POST,
        "/api/login",
        Some("application/json"),
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    response.problem(413);
    let fits = json!({"username": "x".repeat(60 * 1024), "password": "y"});
    raw(
        &app,
        Method::POST,
        "/api/login",
        Some("application/json"),
        serde_json::to_vec(&fits).unwrap(),
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn json_that_is_not_an_object_is_422() {
    let app = TestApp::spawn().await;
    for body in ["[]", "\"susan\"", "42", "null"] {
        raw(
            &app,
            Method::POST,
            "/api/register",
            Some("application/json"),
            body.into(),
        )
        .await
        .problem(422);
    }
    let problem = app
        .anonymous()
        .post(
            "/api/login",
            &json!({"username": "a", "password": "b", "remember_me": "yes"}),
        )
        .await
        .problem(422);
    assert!(problem["errors"]["remember_me"].is_array());
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let app = TestApp::spawn().await;
    for path in ["/nope", "/api/nope", "/api", "/api/me/extra", "/api/login/"] {
        app.anonymous().get(path).await.problem(404);
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allowed) in [
        (Method::GET, "/api/login", "POST"),
        (Method::PUT, "/api/register", "POST"),
        (Method::DELETE, "/api/logout", "POST"),
        (Method::POST, "/api/me", "GET, HEAD, PATCH, DELETE"),
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::DELETE, "/api/openapi.yaml", "GET, HEAD"),
    ] {
        let response = app.anonymous().request(method, path).send().await;
        response.problem(405);
        assert_eq!(response.header("allow"), Some(allowed), "{path}");
    }
}

/// A client that announces a body and stalls, or never finishes its head,
/// is cut off after `CLIENT_TIMEOUT`: a 408 (problem+json where one can
/// still be sent) and a closed connection, not a request held for minutes.
#[tokio::test]
async fn stalled_requests_are_cut_off_after_the_client_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn_with(|s| s.http.client_timeout = secs(1)).await;
    let address = app.address().trim_start_matches("http://").to_owned();
    let stalled = |request: &'static [u8]| {
        let address = address.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.write_all(request).await.unwrap();
            let started = std::time::Instant::now();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
                .await
                .expect("the server closes the connection")
                .unwrap();
            (
                started.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        }
    };

    let (took, answer) = stalled(
        b"POST /api/login HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("urn:authd:problem:request-timeout"),
        "{answer}"
    );

    let (took, answer) = stalled(b"GET /api/me HTTP/1.1\r\nHost: authd\r\n").await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // Logout reads its optional body too (a sendBeacon's), so it waits no
    // longer for one than any other route.
    let (took, answer) = stalled(
        b"POST /api/logout HTTP/1.1\r\nHost: authd\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nx",
    )
    .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A route that reads no body answers, and does not wait for the rest.
    let (took, answer) = stalled(
        b"POST /api/email/verify/resend HTTP/1.1\r\nHost: authd\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nx",
    )
    .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}
