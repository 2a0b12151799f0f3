//! Sessions: cookie attributes, remember-me, expiry, the CSRF check, and
//! what the session row records.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, secs};

fn expires_at(login: &serde_json::Value) -> DateTime<Utc> {
    login["expires_at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_plain_login_is_a_browser_session_cookie() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    let response = app.login("susan", false).await;
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

    app.restart_browser();
    app.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn remember_me_persists_the_cookie_and_the_session() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    let response = app.login("susan", true).await;
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

    app.restart_browser();
    let me = app.get("/api/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], "susan");
}

#[tokio::test]
async fn the_secure_flag_is_on_unless_configured_off() {
    let app = TestApp::spawn_with(|s| s.http.cookie_secure = true).await;
    app.user("susan").await;
    let response = app.login("susan", false).await;
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
async fn sessions_and_tokens_expire() {
    let app = TestApp::spawn_with(|s| {
        s.sessions.ttl = secs(2);
        s.sessions.remember_ttl = secs(3);
    })
    .await;
    app.user("susan").await;
    let plain = app.login("susan", false).await.login_body();
    let (_, phone) = app.new_browser();
    let remembered = app.login_from(&phone, "susan", true).await.login_body();
    app.get("/api/me").await.assert_status(200);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    app.get("/api/me").await.problem(401);
    app.me_with_token(plain.token()).await.problem(401);
    app.me_from(&phone).await.assert_status(200);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.me_from(&phone).await.problem(401);
    app.me_with_token(remembered.token()).await.problem(401);
}

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
async fn the_session_row_records_the_client() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    app.request(
        Method::POST,
        "/api/login",
        Some(&json!({"username": "susan", "password": PASSWORD, "remember_me": true})),
        &[("user-agent", "authd-tests/1.0")],
    )
    .await
    .assert_status(200);
    use authd::schema::sessions::dsl::*;
    use diesel::prelude::*;
    let (agent, address, remembered, id_len): (Option<String>, Option<ipnet::IpNet>, bool, i32) =
        sessions
            .select((
                user_agent,
                ip,
                remember,
                diesel::dsl::sql::<diesel::sql_types::Integer>("length(id)"),
            ))
            .first(&mut app.db.connect())
            .unwrap();
    assert_eq!(agent.as_deref(), Some("authd-tests/1.0"));
    assert_eq!(address.unwrap().addr().to_string(), "127.0.0.1");
    assert!(remembered);
    assert!(id_len >= 43, "256 random bits in base64url");
}

#[tokio::test]
async fn sessions_survive_a_server_restart_with_the_same_key() {
    let mut app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    app.restart_with(|_| {}).await;
    app.get("/api/me").await.assert_status(200);
    app.me_with_token(login.token()).await.assert_status(200);
}

/// Deactivation ends every session for good, by whatever path it is made
/// (here plain SQL, as an operator might): re-activating the account does
/// not bring a copied cookie or token back.
#[tokio::test]
async fn deactivation_revokes_sessions_and_reactivation_does_not_revive_them() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let cookie = app.cookie("authd_session").unwrap();
    let (_, phone) = app.new_browser();
    let phone = app.login_from(&phone, "susan", true).await.login_body();

    app.db
        .execute("UPDATE users SET is_active = false WHERE username = 'susan'");
    let revoked: i64 = {
        use authd::schema::sessions::dsl::*;
        use diesel::prelude::*;
        sessions
            .filter(revoked_at.is_not_null())
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(revoked, 2, "both sessions are revoked at deactivation");
    app.db
        .execute("UPDATE users SET is_active = true WHERE username = 'susan'");

    // Plain SQL reaches the cache through the database's notification.
    app.refused_within_a_second(login.token()).await;
    app.me_with_cookie(&cookie).await.problem(401);
    app.me_with_token(phone.token()).await.problem(401);
    // A fresh login works again.
    let (_, browser) = app.new_browser();
    app.login_from(&browser, "susan", false)
        .await
        .assert_status(200);
}
