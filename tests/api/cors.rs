//! CORS: the allowlist, preflights (granted, refused, never cached), and
//! OPTIONS requests passing the login check.

use reqwest::Method;

use crate::helpers::TestApp;

const SPA: &str = "https://app.example.com";

#[tokio::test]
async fn cors_serves_the_allowlist_and_no_one_else() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, x-csrf-token",
            ),
        ]
    };
    let allowed = app
        .anonymous()
        .request(Method::OPTIONS, "/api/login")
        .headers(&preflight(SPA))
        .send()
        .await;
    allowed.assert_status(200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SPA));
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    for needed in ["authorization", "content-type", "x-csrf-token"] {
        assert!(headers.contains(needed), "{headers}");
    }

    let refused = app
        .anonymous()
        .request(Method::OPTIONS, "/api/login")
        .headers(&preflight("https://evil.example"))
        .send()
        .await;
    assert!(refused.status.is_client_error());
    assert!(refused.header("access-control-allow-origin").is_none());

    let (susan, _) = app.logged_in_app("susan").await;
    let from_spa = susan
        .request(Method::GET, "/api/me")
        .header("origin", SPA)
        .send()
        .await;
    from_spa.assert_status(200);
    assert_eq!(from_spa.header("access-control-allow-origin"), Some(SPA));
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let response = susan
            .request(Method::GET, "/api/me")
            .header("origin", origin)
            .send()
            .await;
        assert!(
            response.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

/// Preflight answers, granted or refused, are for the browser that asked:
/// no shared cache keeps them, and they say what they depend on.
#[tokio::test]
async fn preflight_answers_are_not_cached_and_say_what_they_vary_on() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    for origin in [SPA, "https://evil.example"] {
        let response = app
            .anonymous()
            .request(Method::OPTIONS, "/api/login")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await;
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "{origin}"
        );
        let vary = response.header("vary").unwrap_or_default();
        assert!(vary.contains("Origin"), "{origin}: {vary}");
    }
}

/// Browsers on an allowed origin may send the new methods.
#[tokio::test]
async fn preflights_allow_patch_and_delete() {
    let spa = "https://app.example.com";
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![spa.into()]).await;
    for method in ["PATCH", "DELETE"] {
        let response = app
            .anonymous()
            .request(Method::OPTIONS, "/api/me")
            .header("origin", spa)
            .header("access-control-request-method", method)
            .send()
            .await;
        response.assert_status(200);
        let allowed = response.header("access-control-allow-methods").unwrap();
        assert!(allowed.contains(method), "{allowed}");
    }
}

#[tokio::test]
async fn options_requests_pass_the_login_check() {
    let app = TestApp::spawn().await;
    let response = app
        .anonymous()
        .request(Method::OPTIONS, "/api/me")
        .send()
        .await;
    assert_ne!(response.status, 401, "preflights carry no credentials");
}
