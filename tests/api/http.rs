//! HTTP hygiene on every route: the security headers, and HEAD answering
//! as GET does.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let responses = [
        browser.get("/healthz").await,
        browser.get("/readyz").await,
        browser.get("/api/me").await,
        app.anonymous().get("/api/me").await,
        browser.get("/nope").await,
        browser.get("/api/nope").await,
        browser.request(Method::DELETE, "/api/login").send().await,
        app.anonymous()
            .request(Method::POST, "/api/login")
            .header("content-type", "text/plain")
            .body(b"x".to_vec())
            .send()
            .await,
        browser.post("/api/register", &json!({})).await,
        browser.get("/api/openapi.yaml").await,
    ];
    for response in &responses {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(
            response.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
    for response in &responses[2..4] {
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "user data and 401s"
        );
    }
    let logout = browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await;
    logout.assert_status(204);
    // Opt-in (CLEAR_SITE_DATA): browsers apply it to the whole domain.
    assert_eq!(logout.header("clear-site-data"), None);
}

/// HEAD answers like GET on every GET route: same status and headers, no
/// body.
#[tokio::test]
async fn head_answers_like_get() {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let auth = login.bearer();
    for (path, headers) in [
        ("/healthz", vec![]),
        ("/readyz", vec![]),
        ("/api/openapi.yaml", vec![]),
        ("/api/me", vec![("authorization", auth.as_str())]),
        ("/api/me", vec![]),
        ("/api/sessions", vec![("authorization", auth.as_str())]),
        ("/api/sessions", vec![]),
    ] {
        let get = app
            .anonymous()
            .request(Method::GET, path)
            .headers(&headers)
            .send()
            .await;
        let head = app
            .anonymous()
            .request(Method::HEAD, path)
            .headers(&headers)
            .send()
            .await;
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}");
        for name in [
            "content-type",
            "cache-control",
            "www-authenticate",
            "x-content-type-options",
            "content-security-policy",
        ] {
            assert_eq!(head.header(name), get.header(name), "{path}: {name}");
        }
    }
    let wrong = app.anonymous().request(Method::PUT, "/api/me").send().await;
    let allowed = wrong.problem(405);
    assert_eq!(allowed["status"], 405);
    let allow = wrong.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
}
