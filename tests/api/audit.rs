//! The audit trail: who did what, from where.

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use authd::configuration::Bucket;

#[tokio::test]
async fn the_audit_trail_records_who_did_what_from_where() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 1)).await;
    let user = app.user("susan").await;
    let susan = user["id"].as_i64().unwrap();
    let browser = app.browser();
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": "wrong-password"}),
        )
        .await
        .problem(401);
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": PASSWORD}),
        )
        .await
        .problem(429);
    let other = app.browser_at("127.0.0.10");
    let login = other.login("Susan", false).await.login_body();
    other
        .request(Method::POST, "/api/logout")
        .header("authorization", &login.bearer())
        .header("user-agent", "audit-test")
        .send()
        .await
        .assert_status(204);

    use authd::schema::auth_events::dsl::*;
    type Row = (String, Option<i64>, Option<String>, Option<ipnet::IpNet>);
    let rows: Vec<Row> = auth_events
        .order(id)
        .select((event, user_id, identifier, ip))
        .load(&mut app.db.connect())
        .unwrap();
    let rows: Vec<(String, Option<i64>, Option<String>, String)> = rows
        .into_iter()
        .map(|(e, u, i, a)| (e, u, i, a.map(|a| a.addr().to_string()).unwrap_or_default()))
        .collect();
    let expected = [
        ("register", Some(susan), Some("susan"), "127.0.0.1"),
        ("login_failure", Some(susan), Some("susan"), "127.0.0.1"),
        // The throttle counts per account, so it knows whose it refused.
        ("login_throttled", Some(susan), Some("susan"), "127.0.0.1"),
        ("login_success", Some(susan), Some("Susan"), "127.0.0.10"),
        ("logout", Some(susan), None, "127.0.0.10"),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, (e, u, i, a)) in rows.iter().zip(expected) {
        assert_eq!(
            (row.0.as_str(), row.1, row.2.as_deref(), row.3.as_str()),
            (e, u, i, a)
        );
    }
}

/// Every ended session is in the audit trail.
#[tokio::test]
async fn ending_sessions_is_audited() {
    let app = TestApp::spawn().await;
    let (_, laptop) = app.logged_in_browser("susan").await;
    app.app_login("susan", false).await;
    app.bearer(laptop.token())
        .request(Method::POST, "/api/logout?scope=others")
        .send()
        .await
        .assert_status(204);
    let events: Vec<String> = {
        use authd::schema::auth_events::dsl::*;
        use diesel::prelude::*;
        auth_events
            .select(event)
            .order(id)
            .load(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(
        events.last().map(String::as_str),
        Some("session_revoked"),
        "{events:?}"
    );
}
