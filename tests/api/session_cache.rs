//! Several instances on one database behave as one service. Sessions are
//! checked from memory, yet a revocation, a deactivation or a deletion is
//! seen at once on the instance that made it and within a second on every
//! other, whichever path made it; and nothing is served from memory while
//! the instance cannot hear about changes.

use std::time::Duration;

use diesel::{PgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use authd::configuration::Bucket;

/// Runs `sql` with the database's triggers off, so that no instance hears
/// of it: what a cache that never hears would serve.
fn unheard(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query("SET session_replication_role = replica")
        .execute(conn)
        .unwrap();
    diesel::sql_query(sql).execute(conn).unwrap();
}

/// The cache is really in use (so the tests below mean something): a
/// revocation nobody is told about is not seen by the instance that holds
/// the session, and is by one that does not.
#[tokio::test]
async fn validated_sessions_are_served_from_memory() {
    let app = TestApp::spawn().await;
    let login = app.device_of_new_user("susan").await;
    // The login's own notification (last_login_at changed) may arrive after
    // the first read: let it, then read again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.me_with_token(login.token()).await.assert_status(200);
    unheard(
        &mut app.db.connect(),
        "UPDATE sessions SET revoked_at = now()",
    );
    app.me_with_token(login.token()).await.assert_status(200);
    let cold = app.sibling(|_| {}).await;
    cold.me_with_token(login.token()).await.problem(401);
}

/// A logout, an ended session or a password change on one instance: at
/// once there, within a second on the other.
#[tokio::test]
async fn revocations_reach_every_instance_within_a_second() {
    let a = TestApp::spawn().await;
    let b = a.sibling(|_| {}).await;
    let first = a.device_of_new_user("susan").await;
    let second = a.device("susan", false).await;
    let third = a.device("susan", false).await;
    for login in [&first, &second, &third] {
        a.me_with_token(login.token()).await.assert_status(200);
        b.me_with_token(login.token()).await.assert_status(200);
    }

    b.logout_with_token(first.token()).await.assert_status(204);
    b.me_with_token(first.token()).await.problem(401);
    a.refused_within_a_second(first.token()).await;

    let listed = b
        .with_token(Method::GET, "/api/sessions", None, third.token())
        .await
        .json();
    let second_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.with_token(
        Method::DELETE,
        &format!("/api/sessions/{second_id}"),
        None,
        third.token(),
    )
    .await
    .assert_status(204);
    b.me_with_token(second.token()).await.problem(401);
    a.refused_within_a_second(second.token()).await;

    let fourth = a.device("susan", false).await;
    a.me_with_token(fourth.token()).await.assert_status(200);
    let change = json!({"current_password": PASSWORD, "new_password": "purple monkey dishwasher", "new_password2": "purple monkey dishwasher"});
    b.with_token(
        Method::POST,
        "/api/me/password",
        Some(&change),
        third.token(),
    )
    .await
    .assert_status(204);
    b.me_with_token(fourth.token()).await.problem(401);
    a.refused_within_a_second(fourth.token()).await;
    a.me_with_token(third.token()).await.assert_status(200);
}

/// Deactivation and deletion by plain SQL (the command line's are tested
/// with it): the database itself tells every instance.
#[tokio::test]
async fn deactivation_and_deletion_in_sql_reach_every_instance() {
    let a = TestApp::spawn().await;
    let b = a.sibling(|_| {}).await;
    let susan = a.device_of_new_user("susan").await;
    let bob = a.device_of_new_user("bob").await;
    for app in [&a, &b] {
        app.me_with_token(susan.token()).await.assert_status(200);
        app.me_with_token(bob.token()).await.assert_status(200);
    }
    a.db.execute("UPDATE users SET is_active = false WHERE username = 'susan'");
    a.refused_within_a_second(susan.token()).await;
    b.refused_within_a_second(susan.token()).await;
    a.db.execute("DELETE FROM users WHERE username = 'bob'");
    a.refused_within_a_second(bob.token()).await;
    b.refused_within_a_second(bob.token()).await;
}

/// While its listener is down the instance may miss notifications, so it
/// reads every session from the database.
#[tokio::test]
async fn nothing_is_served_from_memory_while_the_listener_is_down() {
    let app = TestApp::spawn().await;
    let login = app.device_of_new_user("susan").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.me_with_token(login.token()).await.assert_status(200);
    // The listener's connection ends and cannot come back; the pool keeps
    // the connections it has, and so does the test.
    let mut inside = app.db.connect();
    app.db.allow_connections(false);
    app.db.terminate("authd-listener");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Read while deaf: from the database, and not kept.
    app.me_with_token(login.token()).await.assert_status(200);
    unheard(&mut inside, "UPDATE sessions SET revoked_at = now()");
    app.me_with_token(login.token()).await.problem(401);
    app.db.allow_connections(true);
}

/// Two instances on one database behave as one service: what one does,
/// the other honours.
#[tokio::test]
async fn two_instances_share_accounts_sessions_and_counts() {
    let a = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 2)).await;
    let b = a.sibling(|_| {}).await;
    a.register("susan", "susan@example.com")
        .await
        .assert_status(201);
    let login = b.login("susan", false).await.login_body();
    let cookie = b.cookie("authd_session").unwrap();
    a.me_with_token(login.token()).await.assert_status(200);
    a.me_with_cookie(&cookie).await.assert_status(200);
    a.logout_with_token(login.token()).await.assert_status(204);
    b.refused_within_a_second(login.token()).await;
    b.me_with_cookie(&cookie).await.problem(401);

    let (_, browser) = a.new_browser();
    let wrong = json!({"username": "susan", "password": "wrong-guess-123"});
    a.attempt_login(&browser, &wrong).await.problem(401);
    b.attempt_login(&browser, &wrong).await.problem(401);
    let right = json!({"username": "susan", "password": PASSWORD});
    a.attempt_login(&browser, &right).await.problem(429);
}
