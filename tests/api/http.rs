//! HTTP hygiene on every route: the security headers, and HEAD answering
//! as GET does.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let responses = [
        app.get("/healthz").await,
        app.get("/readyz").await,
        app.get("/api/me").await,
        app.bare(Method::GET, "/api/me", None, &[]).await,
        app.get("/nope").await,
        app.get("/api/nope").await,
        app.request(Method::DELETE, "/api/login", None, &[]).await,
        app.raw_request(
            Method::POST,
            "/api/login",
            &[("content-type", "text/plain")],
            b"x".to_vec(),
        )
        .await,
        app.post("/api/register", &json!({})).await,
        app.get("/api/openapi.yaml").await,
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
    let logout = app.logout_with_cookie(login.csrf()).await;
    logout.assert_status(204);
    // Opt-in (CLEAR_SITE_DATA): browsers apply it to the whole domain.
    assert_eq!(logout.header("clear-site-data"), None);
}

/// HEAD answers like GET on every GET route: same status and headers, no
/// body.
#[tokio::test]
async fn head_answers_like_get() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
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
        let get = app.bare(Method::GET, path, None, &headers).await;
        let head = app.bare(Method::HEAD, path, None, &headers).await;
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
    let wrong = app.bare(Method::PUT, "/api/me", None, &[]).await;
    let allowed = wrong.problem(405);
    assert_eq!(allowed["status"], 405);
    let allow = wrong.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
}
