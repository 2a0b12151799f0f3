//! At scale, the hot paths read by index. With tables big enough that the
//! planner would rather not scan them, a start-up and a tour of the API
//! (register, login, the session check, the session list, an address and a
//! password change, a reset by mail, logout) and the purge make no
//! sequential scan of `users`, `sessions`, `auth_events` or `email_tokens`:
//! Postgres's own counters (`pg_stat_user_tables.seq_scan`) say so, read
//! once the server's connections are gone (which flushes their counts).
//! And the read of many sessions at once keeps its plan.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use reqwest::Method;
use serde_json::json;

use crate::cli::{assert_code, authd};

use crate::helpers::mail_sink::MailSink;
use crate::helpers::{PASSWORD, TestApp, TestDatabase};
use crate::recovery::{NEW, RESET, delivered, forgot, mailing, reset};

const WATCHED: [&str; 4] = ["users", "sessions", "auth_events", "email_tokens"];
const ROWS: u32 = 20_000;

#[derive(QueryableByName)]
struct Scans {
    #[diesel(sql_type = Text)]
    relname: String,
    #[diesel(sql_type = BigInt)]
    seq_scan: i64,
}

/// Sequential scans of the watched tables so far, once every other
/// connection to the database has ended (and so flushed its counts).
async fn seq_scans(app: &TestApp) -> BTreeMap<String, i64> {
    app.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = app.db.connect();
    diesel::sql_query(
        "SELECT relname::text AS relname, seq_scan FROM pg_stat_user_tables \
         WHERE relname IN ('users', 'sessions', 'auth_events', 'email_tokens')",
    )
    .load::<Scans>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|row| (row.relname, row.seq_scan))
    .collect()
}

/// `ROWS` accounts (with susan's hash), a live session each, an email
/// token each and three audit events each: enough that a scan would cost.
fn seed(app: &TestApp) {
    let statements = [
        format!(
            "INSERT INTO users (username, email, password_hash) \
             SELECT 'seed' || i, 'seed' || i || '@example.com', \
                    (SELECT password_hash FROM users WHERE username = 'susan') \
             FROM generate_series(1, {ROWS}) AS i"
        ),
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember, \
                               csrf_token, public_id, amr) \
         SELECT md5('s' || id) || md5('t' || id), id, now(), now(), now() + interval '1 hour', \
                false, md5('c' || id), md5('p' || id), '{pwd}' \
         FROM users WHERE username LIKE 'seed%'"
            .into(),
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         SELECT decode(md5('e' || id) || md5('f' || id), 'hex'), id, 'verify', email, now(), \
                now() + interval '1 day' \
         FROM users WHERE username LIKE 'seed%'"
            .into(),
        "INSERT INTO auth_events (at, event, user_id, identifier) \
         SELECT now() - (n || ' minutes')::interval, 'login_success', id, username \
         FROM users, generate_series(1, 3) AS n WHERE username LIKE 'seed%'"
            .into(),
        "ANALYZE".into(),
    ];
    for statement in statements {
        app.db.execute(&statement);
    }
}

#[tokio::test]
async fn start_up_the_api_and_the_purge_scan_no_big_table() {
    let sink = MailSink::start();
    let mut app = TestApp::spawn_with(mailing(&sink)).await;
    app.user("susan").await;
    seed(&app);
    let before = seq_scans(&app).await;

    app.restart_with(|_| {}).await;
    let susan = app.browser();
    susan.login("susan", false).await.assert_status(200);
    susan.get("/api/me").await.assert_status(200);
    susan.get("/api/sessions").await.assert_status(200);
    let moved = json!({"current_password": PASSWORD, "email": "susan@example.org"});
    susan
        .request(Method::PATCH, "/api/me")
        .csrf()
        .json(&moved)
        .send()
        .await
        .assert_status(200);
    let change = json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW});
    susan
        .request(Method::POST, "/api/me/password")
        .csrf()
        .json(&change)
        .send()
        .await
        .assert_status(204);
    forgot(&app, "susan@example.org").await.assert_status(202);
    let token = delivered(&app, &sink, "susan@example.org", RESET, 1).await[0].token();
    reset(&app, &token, PASSWORD).await.assert_status(204);
    let (app_client, _) = app.logged_in_app("newcomer").await;
    app_client
        .post("/api/logout", &json!({}))
        .await
        .assert_status(204);
    app.anonymous().login("nobody", false).await.problem(401);
    assert_code(
        &authd(&app.db.url(), &["session", "purge"], "", &[]).await,
        0,
    );

    let after = seq_scans(&app).await;
    let scanned: Vec<String> = WATCHED
        .iter()
        .filter(|table| after.get(**table) != before.get(**table))
        .map(|table| {
            format!(
                "{table}: {:?} -> {:?}",
                before.get(*table),
                after.get(*table)
            )
        })
        .collect();
    assert!(scanned.is_empty(), "sequential scans of: {scanned:?}");
}

#[derive(QueryableByName)]
struct Plans {
    #[diesel(sql_type = BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = BigInt)]
    custom_plans: i64,
}

/// Misses under load are read a few at a time, and each read used to be
/// planned anew (as much work for Postgres as the read): it must reuse one
/// plan, as the one-session read does. Postgres makes five plans for the
/// actual arguments before it may settle on a generic one, and only on a
/// table of some size do the two cost differently.
#[tokio::test]
async fn a_read_of_a_few_sessions_keeps_its_plan() {
    let db = tokio::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    for statement in [
        "INSERT INTO users (username, email, password_hash) \
         SELECT 'seed' || i, 'seed' || i || '@example.com', '$2b$04$not a real hash' \
         FROM generate_series(1, 5000) AS i",
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember, \
                               csrf_token, public_id, amr) \
         SELECT md5('s' || id) || md5('t' || id), id, now(), now(), now() + interval '1 hour', \
                false, md5('c' || id), md5('p' || id), '{pwd}' \
         FROM users",
        "ANALYZE",
    ] {
        db.execute(statement);
    }
    let mut conn = db.connect();
    let now = chrono::Utc::now();
    for reads in 0..10 {
        let tokens: Vec<authd::SessionToken> = (0..2 + reads % 3)
            .map(|_| authd::SessionToken::generate())
            .collect();
        let found = authd::db::sessions::find_live_with_users(
            &mut conn,
            &tokens,
            now,
            now - chrono::TimeDelta::hours(1),
        )
        .unwrap();
        assert!(found.is_empty());
    }
    let plans = diesel::sql_query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%= ANY(%'",
    )
    .load::<Plans>(&mut conn)
    .unwrap();
    assert_eq!(plans.len(), 1, "one prepared statement for the read");
    let Plans {
        generic_plans,
        custom_plans,
    } = plans[0];
    assert!(
        custom_plans <= 5 && generic_plans >= 5,
        "planned anew: {custom_plans} custom plans, {generic_plans} generic"
    );
}
