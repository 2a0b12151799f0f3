//! `/api/auth/check`, forward auth: what a reverse proxy asks about each
//! request to an upstream it protects. The proxy passes the request's
//! credential and its method on; authd answers 204 with the caller's
//! identity, or refuses as any route would.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Actor, TestApp, TestResponse};

const CHECK: &str = "/api/auth/check";
const SPA: &str = "https://app.example.com";
const UNSAFE: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// The check, as a proxy makes it for a request with these headers.
async fn check(actor: &Actor, headers: &[(&str, &str)]) -> TestResponse {
    actor
        .request(Method::GET, CHECK)
        .headers(headers)
        .send()
        .await
}

/// Asserts a passed check and returns its `X-Authd-*` headers, by name
/// without the prefix.
#[track_caller]
fn identity(response: &TestResponse) -> Vec<(&'static str, String)> {
    response.assert_status(204);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.body.is_empty());
    ["user-id", "username", "session", "email-verified", "email"]
        .into_iter()
        .map(|name| {
            let value = response
                .header(&format!("x-authd-{name}"))
                .unwrap_or_else(|| panic!("no x-authd-{name}"));
            (name, value.to_owned())
        })
        .collect()
}

/// What the check must answer for this actor, from `GET /api/me`.
async fn expected_identity(actor: &Actor) -> Vec<(&'static str, String)> {
    let me = actor.get("/api/me").await;
    me.assert_status(200);
    let me = me.json();
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    vec![
        ("user-id", text(&me["id"])),
        ("username", text(&me["username"])),
        ("session", text(&me["session"]["id"])),
        ("email-verified", text(&me["email_verified"])),
        ("email", text(&me["email"])),
    ]
}

#[tokio::test]
async fn anonymous_and_invalid_credentials_are_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    for actor in [
        app.anonymous(),
        app.bearer("not-a-token"),
        app.with_session_cookie("garbage"),
    ] {
        let response = check(&actor, &[]).await;
        assert_eq!(
            response.problem(401)["type"],
            "urn:authd:problem:unauthenticated"
        );
        assert!(
            response
                .header("www-authenticate")
                .is_some_and(|value| value.starts_with("Bearer"))
        );
        assert!(response.header("x-authd-user-id").is_none());
        let head = actor.request(Method::HEAD, CHECK).send().await;
        head.assert_status(401);
        assert!(head.header("www-authenticate").is_some());
    }
}

/// The identity is the one `GET /api/me` and `GET /api/sessions` show, for
/// a cookie and for a bearer token, each its own session.
#[tokio::test]
async fn a_bearer_token_and_a_cookie_pass_with_the_callers_identity() {
    let app = TestApp::spawn().await;
    app.user("bob").await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", false).await;

    let by_cookie = identity(&check(&browser, &[]).await);
    let by_token = identity(&check(&phone, &[]).await);
    assert_eq!(by_cookie, expected_identity(&browser).await);
    assert_eq!(by_token, expected_identity(&phone).await);
    assert_eq!(by_cookie[1], ("username", "susan".to_owned()));
    assert_eq!(by_cookie[3], ("email-verified", "false".to_owned()));
    assert_eq!(by_cookie[4], ("email", "susan@example.com".to_owned()));
    assert_ne!(by_cookie[2], by_token[2], "two sessions");
    let sessions = browser.get("/api/sessions").await.json();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|session| session["current"] == true)
        .unwrap();
    assert_eq!(current["id"], by_cookie[2].1.as_str());

    // HEAD, which some proxies use, answers the same without a body.
    let head = browser.request(Method::HEAD, CHECK).send().await;
    assert_eq!(identity(&head), by_cookie);
}

/// A verified address says so, as soon as the account changes: the
/// session cache hears of it like any other change.
#[tokio::test]
async fn a_verified_address_is_reported_verified() {
    let app = TestApp::spawn().await;
    let (phone, _) = app.logged_in_app("susan").await;
    assert_eq!(identity(&check(&phone, &[]).await)[3].1, "false");
    app.db
        .execute("UPDATE users SET email_verified_at = now() WHERE username = 'susan'");
    let deadline = Instant::now() + Duration::from_secs(1);
    while identity(&check(&phone, &[]).await)[3].1 != "true" {
        assert!(Instant::now() < deadline, "still unverified a second later");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(expected_identity(&phone).await[3].1, "true");
}

/// An upstream must be able to read the address back exactly, so `%` is
/// percent-encoded (as anything outside printable ASCII would be; but the
/// addresses authd accepts have ASCII local parts, and their domains are
/// stored in ASCII form), and nothing else is.
#[tokio::test]
async fn the_address_is_percent_encoded_where_it_holds_a_percent_sign() {
    let app = TestApp::spawn().await;
    // Were this accepted, the header would need its UTF-8 encoded.
    app.register("jose", "josé@example.com").await.problem(422);
    for (username, email, header) in [
        ("percent", "a%b%25@example.com", "a%25b%2525@example.com"),
        (
            "marks",
            "o'hara+x/y=z!#$&*^_`{|}~@example.com",
            "o'hara+x/y=z!#$&*^_`{|}~@example.com",
        ),
        ("books", "anna@bücher.example", "anna@xn--bcher-kva.example"),
    ] {
        app.register(username, email).await.assert_status(201);
        let (app_client, _) = app.app_login(username, false).await;
        let passed = identity(&check(&app_client, &[]).await);
        assert_eq!(passed[4].1, header, "{email}");
        let stored = app_client.get("/api/me").await.json()["email"].clone();
        let decoded = percent_decode(&passed[4].1);
        assert_eq!(stored, decoded.as_str(), "{email}: decodes to the address");
    }
}

fn percent_decode(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// A cookie travels with any request a browser makes, a forged one too: on
/// an unsafe original method the check wants the session's CSRF token,
/// whichever header names the method, and if either does.
#[tokio::test]
async fn a_cookie_on_an_unsafe_original_method_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let other = app.browser().login("susan", false).await.login_body();
    for header in ["x-original-method", "x-forwarded-method"] {
        for method in UNSAFE {
            let missing = check(&browser, &[(header, method)]).await;
            assert_eq!(
                missing.problem(403)["type"],
                "urn:authd:problem:csrf-failed",
                "{header}: {method}"
            );
            for wrong in ["wrong", other.csrf()] {
                check(&browser, &[(header, method), ("x-csrf-token", wrong)])
                    .await
                    .problem(403);
            }
            let right = check(
                &browser,
                &[(header, method), ("x-csrf-token", login.csrf())],
            )
            .await;
            identity(&right);
        }
        for method in ["GET", "HEAD", "OPTIONS"] {
            identity(&check(&browser, &[(header, method)]).await);
        }
        // Not a method a proxy would name as it stands: unsafe, as is any
        // method that is not known to be safe.
        for method in ["post", "PROPFIND"] {
            check(&browser, &[(header, method)]).await.problem(403);
        }
    }
    // One proxy's header set, a client's copy of the other passed along:
    // unsafe if either says so.
    for (original, forwarded) in [("GET", "POST"), ("DELETE", "GET")] {
        check(
            &browser,
            &[
                ("x-original-method", original),
                ("x-forwarded-method", forwarded),
            ],
        )
        .await
        .problem(403);
    }
    // Where the request went changes nothing.
    let with_uri = check(
        &browser,
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/app/anything?x=1"),
            ("x-forwarded-uri", "/app/else"),
        ],
    )
    .await;
    identity(&with_uri);
}

/// A cookie-carried unsafe request from a page of another site is refused
/// even with the token; this site's pages and the allowed origins pass.
/// Reads are not refused: only unsafe requests are a browser's forgeries.
#[tokio::test]
async fn a_cookie_on_an_unsafe_original_method_must_come_from_an_allowed_origin() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let own = app.address();
    let unsafe_check = |source: (&'static str, String)| {
        let browser = browser.clone();
        let csrf = login.csrf().to_owned();
        async move {
            check(
                &browser,
                &[
                    ("x-original-method", "POST"),
                    ("x-csrf-token", &csrf),
                    (source.0, &source.1),
                ],
            )
            .await
        }
    };
    for source in [
        ("origin", "https://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("origin", own.replacen("http://", "https://", 1)),
        ("referer", "https://evil.example/page".to_owned()),
    ] {
        let refused = unsafe_check(source.clone()).await;
        assert_eq!(
            refused.problem(403)["type"],
            "urn:authd:problem:foreign-origin",
            "{source:?}"
        );
    }
    for source in [
        ("origin", own.clone()),
        ("origin", SPA.to_owned()),
        ("referer", format!("{own}/app/page")),
    ] {
        identity(&unsafe_check(source).await);
    }
    let read = check(
        &browser,
        &[
            ("x-original-method", "GET"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    identity(&read);
}

/// A bearer token is sent only by code that holds it, never by a browser on
/// a foreign page's behalf: no CSRF token, no origin check.
#[tokio::test]
async fn a_bearer_token_needs_no_csrf_token_on_an_unsafe_original_method() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let phone = app.bearer(login.token());
    for header in ["x-original-method", "x-forwarded-method"] {
        for method in UNSAFE {
            identity(&check(&phone, &[(header, method)]).await);
        }
    }
    identity(
        &check(
            &phone,
            &[
                ("x-original-method", "POST"),
                ("origin", "https://evil.example"),
            ],
        )
        .await,
    );
    // The token wins over the browser's own cookie, as on every route.
    let both = browser
        .request(Method::GET, CHECK)
        .header("authorization", &login.bearer())
        .header("x-original-method", "DELETE")
        .send()
        .await;
    identity(&both);
}

/// An ended session passes no more: logged out, ended from another device,
/// or the account deactivated.
#[tokio::test]
async fn an_ended_session_is_401() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", false).await;
    let (tablet, _) = app.app_login("susan", false).await;
    for actor in [&browser, &phone, &tablet] {
        identity(&check(actor, &[]).await);
    }

    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    check(&browser, &[]).await.problem(401);

    let phone_session = identity(&check(&phone, &[]).await)[2].1.clone();
    tablet
        .request(Method::DELETE, &format!("/api/sessions/{phone_session}"))
        .send()
        .await
        .assert_status(204);
    check(&phone, &[]).await.problem(401);
    identity(&check(&tablet, &[]).await);

    app.db
        .execute("UPDATE users SET is_active = false WHERE username = 'susan'");
    let deadline = Instant::now() + Duration::from_secs(1);
    while check(&tablet, &[]).await.status != 401 {
        assert!(Instant::now() < deadline, "still passed a second later");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check(&tablet, &[]).await.problem(401);
}

/// A proxy asks with GET or HEAD; anything else is 405 naming those.
#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let app = TestApp::spawn().await;
    let (phone, _) = app.logged_in_app("susan").await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let response = phone.request(method.clone(), CHECK).send().await;
        response.problem(405);
        let allow = response.header("allow").unwrap();
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "{method}: {allow}"
        );
        assert!(response.header("x-authd-user-id").is_none());
    }
}
