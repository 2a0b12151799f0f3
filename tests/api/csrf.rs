//! Cross-site request forgery: cookie sessions need their CSRF token for
//! unsafe requests, bearer tokens do not, and unsafe requests from a
//! foreign origin are refused whatever the credential.

use diesel::prelude::*;
use reqwest::Method;

use crate::helpers::{PASSWORD, TestApp};

const SPA: &str = "https://app.example.com";

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let logout = |csrf: &str| {
        browser
            .request(Method::POST, "/api/logout")
            .header("x-csrf-token", csrf)
            .send()
    };

    let missing = browser.request(Method::POST, "/api/logout").send().await;
    assert_eq!(missing.problem(403)["title"], "CSRF check failed");
    logout("wrong").await.problem(403);
    let other_session = app.browser().login("susan", false).await.login_body();
    logout(other_session.csrf()).await.problem(403);
    browser.get("/api/me").await.assert_status(200);

    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    browser.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    // Same browser, cookie and all: the bearer token takes precedence.
    browser
        .request(Method::POST, "/api/logout")
        .header("authorization", &login.bearer())
        .send()
        .await
        .assert_status(204);
}

#[tokio::test]
async fn cookie_writes_from_a_foreign_origin_are_refused() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let own = app.address();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:1"),
        ("referer", "https://evil.example/page"),
    ] {
        let response = browser
            .request(Method::POST, "/api/logout")
            .csrf()
            .header(header, value)
            .send()
            .await;
        assert_eq!(
            response.problem(403)["type"],
            "urn:authd:problem:foreign-origin",
            "{header}: {value}"
        );
    }
    browser.get("/api/me").await.assert_status(200);
    // Whatever the credential: a foreign page's unsafe request is refused
    // before anything runs, so the token's session lives on.
    let other = app.browser();
    let second = other.login("susan", false).await.login_body();
    let refused = app
        .bearer(second.token())
        .request(Method::POST, "/api/logout")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(
        refused.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    app.bearer(second.token())
        .get("/api/me")
        .await
        .assert_status(200);
    for origin in [own.as_str(), SPA] {
        let fresh = app.browser();
        fresh.login("susan", false).await.assert_status(200);
        fresh
            .request(Method::POST, "/api/logout")
            .csrf()
            .header("origin", origin)
            .send()
            .await
            .assert_status(204);
    }
    app.bearer(login.token())
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
}

#[tokio::test]
async fn behind_a_host_rewriting_proxy_public_url_names_the_own_origin() {
    let app =
        TestApp::spawn_with(|s| s.http.public_origin = Some("https://auth.example.com".into()))
            .await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let own = app.address();
    // The Host header now says nothing: only PUBLIC_URL is this site.
    let logout = |origin: &str| {
        browser
            .request(Method::POST, "/api/logout")
            .csrf()
            .header("origin", origin)
            .send()
    };
    logout(&own).await.problem(403);
    logout("https://auth.example.com").await.assert_status(204);
}

/// Origins are compared whole: the plain-http server's own host and port
/// under `https` is another origin.
#[tokio::test]
async fn the_origin_check_compares_scheme_host_and_port() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let own = app.address();
    let https = own.replacen("http://", "https://", 1);
    let logout = |origin: &str| {
        browser
            .request(Method::POST, "/api/logout")
            .csrf()
            .header("origin", origin)
            .send()
    };
    let response = logout(&https).await;
    assert_eq!(
        response.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    browser.get("/api/me").await.assert_status(200);
    logout(&own).await.assert_status(204);
}

/// A foreign page can make a browser post without asking (a form, a
/// `text/plain` fetch): such a request is refused before anything runs,
/// with or without a session, so it can neither log the browser out nor
/// into the attacker's account. Clients that send no `Origin` or `Referer`
/// (curl, apps) are unaffected.
#[tokio::test]
async fn a_foreign_page_cannot_make_the_browser_act() {
    let app = TestApp::spawn().await;
    app.user("attacker").await;
    let foreign = [("origin", "https://evil.example")];
    let refer = [("referer", "https://evil.example/page")];
    let text = |headers: &[(&'static str, &'static str)]| {
        let mut all = vec![("content-type", "text/plain")];
        all.extend_from_slice(headers);
        all
    };
    let logout = app
        .anonymous()
        .request(Method::POST, "/api/logout")
        .headers(&text(&foreign))
        .body(Vec::new())
        .send()
        .await;
    assert_eq!(
        logout.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    assert!(logout.header("clear-site-data").is_none());
    assert!(logout.set_cookie("csrf_token").is_none());

    let credentials = format!(r#"{{"username":"attacker","password":"{PASSWORD}"}}"#);
    for headers in [&foreign, &refer] {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        let login = app
            .anonymous()
            .request(Method::POST, "/api/login")
            .headers(&headers)
            .body(credentials.clone().into_bytes())
            .send()
            .await;
        login.problem(403);
        assert!(login.set_cookie("authd_session").is_none());
        let register = app
            .anonymous()
            .request(Method::POST, "/api/register")
            .headers(&headers)
            .body(b"{}".to_vec())
            .send()
            .await;
        register.problem(403);
    }
    let sessions: i64 = {
        use authd::schema::sessions::dsl::*;
        sessions.count().get_result(&mut app.db.connect()).unwrap()
    };
    assert_eq!(sessions, 0, "no login went through");
    // No Origin, no Referer: not a browser, not refused.
    app.anonymous()
        .request(Method::POST, "/api/login")
        .header("content-type", "application/json")
        .body(credentials.into_bytes())
        .send()
        .await
        .assert_status(200);
    app.anonymous()
        .request(Method::POST, "/api/logout")
        .headers(&text(&[]))
        .body(Vec::new())
        .send()
        .await
        .assert_status(204);
}
