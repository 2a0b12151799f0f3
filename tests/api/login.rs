//! Logging in: the response, the cookies, what failures look like, and
//! the conflicts with a session already open.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Actor, PASSWORD, TestApp};

#[tokio::test]
async fn login_returns_user_token_csrf_and_sets_cookies() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    let response = browser.login("susan", false).await;
    response.assert_status(200);
    let body = response.json();
    assert_eq!(body["user"]["username"], "susan");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["remember_me"], false);
    assert_eq!(body["next"], "/");
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["user"]["last_login_at"].is_string());
    let csrf = body["csrf_token"].as_str().unwrap();
    assert!(csrf.len() >= 22);
    assert_eq!(browser.cookie("csrf_token").as_deref(), Some(csrf));
    assert!(response.set_cookie("authd_session").is_some());
    assert_eq!(response.header("cache-control"), Some("no-store"));

    let last_login: Option<chrono::DateTime<chrono::Utc>> = {
        use diesel::prelude::*;
        authd::schema::users::table
            .select(authd::schema::users::last_login_at)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(last_login.is_some(), "last_login_at is recorded");
}

#[tokio::test]
async fn the_email_in_any_case_also_logs_in() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    for identifier in ["SUSAN", "susan@example.com", " Susan@EXAMPLE.com "] {
        let browser = app.browser();
        browser.login(identifier, false).await.assert_status(200);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    let wrong = browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": "wrong-password"}),
        )
        .await;
    let unknown = browser
        .post(
            "/api/login",
            &json!({"username": "nobody", "password": "wrong-password"}),
        )
        .await;
    for response in [&wrong, &unknown] {
        let body = response.problem(401);
        assert_eq!(body["title"], "Invalid username or password");
        assert_eq!(body["detail"], "Invalid username or password");
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.header("www-authenticate"),
        unknown.header("www-authenticate")
    );
    assert!(wrong.set_cookies().is_empty());
}

/// Not a performance goal: a security property. Without the dummy bcrypt
/// verify an unknown user answers in a fraction of the time a wrong
/// password does; the bound is loose so scheduler noise cannot flip it.
#[tokio::test]
async fn unknown_users_cost_a_bcrypt_verify_too() {
    let app = TestApp::spawn_with(|s| s.passwords.bcrypt_cost = 9).await;
    let browser = app.browser();
    app.user("susan").await;
    async fn median(browser: &Actor, username: &str) -> Duration {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            browser
                .post(
                    "/api/login",
                    &json!({"username": username, "password": "wrong-password"}),
                )
                .await
                .assert_status(401);
            times.push(started.elapsed());
        }
        times.sort();
        times[2]
    }
    let wrong_password = median(&browser, "susan").await;
    let unknown_user = median(&browser, "nobody").await;
    assert!(
        unknown_user * 2 > wrong_password,
        "unknown user {unknown_user:?} vs wrong password {wrong_password:?}"
    );
}

#[tokio::test]
async fn an_inactive_account_is_refused_only_with_the_right_password() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    app.db.execute("UPDATE users SET is_active = false");
    let body = browser.login("susan", false).await.problem(403);
    assert_eq!(body["title"], "Account disabled");
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": "wrong-password"}),
        )
        .await
        .problem(401);
}

#[tokio::test]
async fn missing_fields_are_422() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let body = browser.post("/api/login", &json!({})).await.problem(422);
    assert_eq!(
        body["errors"]["username"],
        json!(["This field is required."])
    );
    assert_eq!(
        body["errors"]["password"],
        json!(["This field is required."])
    );
    let body = browser
        .post("/api/login", &json!({"username": "", "password": "x"}))
        .await
        .problem(422);
    assert_eq!(
        body["errors"],
        json!({"username": ["This field is required."]})
    );
}

#[tokio::test]
async fn logging_in_while_logged_in_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let body = json!({"username": "susan", "password": PASSWORD});
    browser
        .request(Method::POST, "/api/login")
        .json(&body)
        .header("x-csrf-token", login.csrf())
        .send()
        .await
        .problem(409);
    app.bearer(login.token())
        .post("/api/login", &body)
        .await
        .problem(409);
}

#[tokio::test]
async fn each_login_is_a_new_session_and_others_stay_logged_in() {
    let app = TestApp::spawn().await;
    let (browser, first) = app.logged_in_browser("susan").await;
    let phone = app.browser();
    let second = phone.login("susan", false).await.login_body();
    assert_ne!(first["access_token"], second["access_token"]);
    assert_ne!(first["csrf_token"], second["csrf_token"]);
    browser.get("/api/me").await.assert_status(200);
    app.bearer(first.token())
        .get("/api/me")
        .await
        .assert_status(200);
    app.bearer(second.token())
        .get("/api/me")
        .await
        .assert_status(200);
    phone.get("/api/me").await.assert_status(200);
}

#[tokio::test]
async fn a_fresh_login_never_reuses_the_old_session_cookie() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let old_cookie = browser.cookie("authd_session").unwrap();
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    browser.login("susan", false).await.assert_status(200);
    let new_cookie = browser.cookie("authd_session").unwrap();
    assert_ne!(old_cookie, new_cookie);

    app.with_session_cookie(&old_cookie)
        .get("/api/me")
        .await
        .problem(401);
}

/// Found by schemathesis: Postgres text cannot hold NUL, and asking it to
/// compare one was a 500.
#[tokio::test]
async fn a_nul_in_the_identifier_is_just_a_failed_login() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    for identifier in ["su\u{0}san", "\u{0}", "susan@example.com\u{0}"] {
        browser
            .post(
                "/api/login",
                &json!({"username": identifier, "password": PASSWORD}),
            )
            .await
            .problem(401);
    }
    browser.post("/api/register", &json!({"username": "nul\u{0}", "email": "n\u{0}@example.com", "password": "pass\u{0}word", "password2": "pass\u{0}word"}))
    .await
    .problem(422);
}

/// Found by schemathesis: optional fields sent as `null` mean "absent",
/// as the contract says.
#[tokio::test]
async fn null_optional_fields_mean_absent() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    let response = browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": PASSWORD, "remember_me": null, "next": null}),
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.json()["remember_me"], false);
    assert_eq!(response.json()["next"], "/");
}

/// A login by address goes through the same normalisation as registration:
/// any spelling of the mailbox reaches the account.
#[tokio::test]
async fn any_spelling_of_the_address_logs_in() {
    let app = TestApp::spawn().await;
    app.register("idn", "Idn@Bücher.example")
        .await
        .assert_status(201);
    for spelling in [
        "idn@xn--bcher-kva.example",
        "IDN@B\u{DC}CHER.EXAMPLE",
        "\u{FF49}\u{FF44}\u{FF4E}@bücher\u{3002}example",
    ] {
        let browser = app.browser();
        let body = json!({"username": spelling, "password": PASSWORD});
        browser.post("/api/login", &body).await.assert_status(200);
    }
}

#[tokio::test]
async fn the_session_row_records_the_client() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    browser
        .request(Method::POST, "/api/login")
        .json(&json!({"username": "susan", "password": PASSWORD, "remember_me": true}))
        .header("user-agent", "authd-tests/1.0")
        .send()
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
