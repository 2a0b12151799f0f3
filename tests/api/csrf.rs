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
    let login = app.logged_in("susan").await;

    let missing = app.request(Method::POST, "/api/logout", None, &[]).await;
    assert_eq!(missing.problem(403)["title"], "CSRF check failed");
    app.logout_with_cookie("wrong").await.problem(403);
    let other_session = app.login_elsewhere("susan").await;
    app.logout_with_cookie(&other_session).await.problem(403);
    app.get("/api/me").await.assert_status(200);

    app.logout_with_cookie(login.csrf())
        .await
        .assert_status(204);
    app.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    // Same browser, cookie and all: the bearer token takes precedence.
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[("authorization", &login.bearer())],
    )
    .await
    .assert_status(204);
}

#[tokio::test]
async fn cookie_writes_from_a_foreign_origin_are_refused() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let login = app.logged_in("susan").await;
    let own = app.address.clone();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:1"),
        ("referer", "https://evil.example/page"),
    ] {
        let response = app
            .request(
                Method::POST,
                "/api/logout",
                None,
                &[("x-csrf-token", login.csrf()), (header, value)],
            )
            .await;
        assert_eq!(
            response.problem(403)["type"],
            "urn:authd:problem:foreign-origin",
            "{header}: {value}"
        );
    }
    app.get("/api/me").await.assert_status(200);
    // Whatever the credential: a foreign page's unsafe request is refused
    // before anything runs, so the token's session lives on.
    let (_, other) = app.new_browser();
    let second = app.login_from(&other, "susan", false).await.login_body();
    let refused = app
        .bare(
            Method::POST,
            "/api/logout",
            None,
            &[
                ("authorization", &second.bearer()),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(
        refused.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    app.me_with_token(second.token()).await.assert_status(200);
    for origin in [own.as_str(), SPA] {
        let (_, browser) = app.new_browser();
        let fresh = app.login_from(&browser, "susan", false).await.login_body();
        app.request_with(
            &browser,
            Method::POST,
            "/api/logout",
            None,
            &[("x-csrf-token", fresh.csrf()), ("origin", origin)],
        )
        .await
        .assert_status(204);
    }
    app.logout_with_token(login.token())
        .await
        .assert_status(204);
}

#[tokio::test]
async fn behind_a_host_rewriting_proxy_public_url_names_the_own_origin() {
    let app =
        TestApp::spawn_with(|s| s.http.public_origin = Some("https://auth.example.com".into()))
            .await;
    let login = app.logged_in("susan").await;
    let csrf = login.csrf();
    let own = app.address.clone();
    // The Host header now says nothing: only PUBLIC_URL is this site.
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[("x-csrf-token", csrf), ("origin", &own)],
    )
    .await
    .problem(403);
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[
            ("x-csrf-token", csrf),
            ("origin", "https://auth.example.com"),
        ],
    )
    .await
    .assert_status(204);
}

/// Origins are compared whole: the plain-http server's own host and port
/// under `https` is another origin.
#[tokio::test]
async fn the_origin_check_compares_scheme_host_and_port() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let own = app.address.clone();
    let https = own.replacen("http://", "https://", 1);
    let response = app
        .request(
            Method::POST,
            "/api/logout",
            None,
            &[("x-csrf-token", login.csrf()), ("origin", &https)],
        )
        .await;
    assert_eq!(
        response.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    app.get("/api/me").await.assert_status(200);
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[("x-csrf-token", login.csrf()), ("origin", &own)],
    )
    .await
    .assert_status(204);
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
        .raw_request(Method::POST, "/api/logout", &text(&foreign), Vec::new())
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
            .raw_request(
                Method::POST,
                "/api/login",
                &headers,
                credentials.clone().into_bytes(),
            )
            .await;
        login.problem(403);
        assert!(login.set_cookie("authd_session").is_none());
        let register = app
            .raw_request(Method::POST, "/api/register", &headers, b"{}".to_vec())
            .await;
        register.problem(403);
    }
    let sessions: i64 = {
        use authd::schema::sessions::dsl::*;
        sessions.count().get_result(&mut app.db.connect()).unwrap()
    };
    assert_eq!(sessions, 0, "no login went through");
    // No Origin, no Referer: not a browser, not refused.
    app.raw_request(
        Method::POST,
        "/api/login",
        &[("content-type", "application/json")],
        credentials.into_bytes(),
    )
    .await
    .assert_status(200);
    app.raw_request(Method::POST, "/api/logout", &text(&[]), Vec::new())
        .await
        .assert_status(204);
}
