//! The session and CSRF cookies: their attributes, a browser session or a
//! remembered one, and the `__Host-` prefix when secure.

use chrono::{DateTime, Utc};
use reqwest::Method;

use crate::helpers::TestApp;

fn expires_at(login: &serde_json::Value) -> DateTime<Utc> {
    login["expires_at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_plain_login_is_a_browser_session_cookie() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    let browser = app.browser();
    let response = browser.login("susan", false).await;
    let cookie = response.set_cookie("authd_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    let csrf = response.set_cookie("csrf_token").unwrap();
    assert!(
        !csrf.contains("HttpOnly"),
        "the SPA must be able to read it: {csrf}"
    );
    assert!(!csrf.contains("Max-Age"), "{csrf}");

    let lifetime = expires_at(&response.json()) - Utc::now();
    assert!(
        (lifetime - chrono::TimeDelta::hours(24))
            .num_seconds()
            .abs()
            < 60,
        "{lifetime}"
    );

    browser.restart();
    browser.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn remember_me_persists_the_cookie_and_the_session() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    let browser = app.browser();
    let response = browser.login("susan", true).await;
    let body = response.login_body();
    assert_eq!(body["remember_me"], true);
    let cookie = response.set_cookie("authd_session").unwrap();
    assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(
        response
            .set_cookie("csrf_token")
            .unwrap()
            .contains("Max-Age=2592000")
    );
    let lifetime = expires_at(&body) - Utc::now();
    assert!(
        (lifetime - chrono::TimeDelta::days(30)).num_seconds().abs() < 60,
        "{lifetime}"
    );
    let token =
        jsonwebtoken::dangerous::insecure_decode::<authd::http::auth::token::Claims>(body.token())
            .unwrap()
            .claims;
    assert_eq!(
        token.exp,
        expires_at(&body).timestamp(),
        "the token lives as long as the session"
    );

    browser.restart();
    let me = browser.get("/api/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], "susan");
}

#[tokio::test]
async fn the_secure_flag_is_on_unless_configured_off() {
    let app = TestApp::spawn_with(|s| s.http.cookie_secure = true).await;
    app.user("susan").await;
    let response = app.browser().login("susan", false).await;
    assert!(
        response
            .set_cookie("__Host-authd_session")
            .unwrap()
            .contains("Secure")
    );
    assert!(
        response
            .set_cookie("csrf_token")
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let app = TestApp::spawn_with(|s| s.http.cookie_secure = true).await;
    app.user("susan").await;
    let response = app.browser().login("susan", true).await;
    let cookie = response
        .set_cookie("__Host-authd_session")
        .expect("a __Host- cookie");
    for attribute in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(response.set_cookie("authd_session").is_none());
    let logout = app
        .bearer(response.login_body().token())
        .request(Method::POST, "/api/logout")
        .send()
        .await;
    logout.assert_status(204);
    assert!(
        logout
            .set_cookie("__Host-authd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
}
