//! Several instances on one database behave as one service. Sessions are
//! checked from memory, yet a revocation, a deactivation or a deletion is
//! seen at once on the instance that made it and within a second on every
//! other, whichever path made it; and nothing is served from memory while
//! the instance cannot hear about changes.

use std::time::Duration;

use diesel::{PgConnection, QueryDsl, RunQueryDsl};
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
    let (susan, _) = app.logged_in_app("susan").await;
    // The login's own notification (last_login_at changed) may arrive after
    // the first read: let it, then read again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    susan.get("/api/me").await.assert_status(200);
    unheard(
        &mut app.db.connect(),
        "UPDATE sessions SET revoked_at = now()",
    );
    susan.get("/api/me").await.assert_status(200);
    let cold = app.sibling(|_| {}).await;
    susan.via(&cold).get("/api/me").await.problem(401);
}

/// A logout, an ended session or a password change on one instance: at
/// once there, within a second on the other.
#[tokio::test]
async fn revocations_reach_every_instance_within_a_second() {
    let a = TestApp::spawn().await;
    let b = a.sibling(|_| {}).await;
    let (first, _) = a.logged_in_app("susan").await;
    let (second, _) = a.app_login("susan", false).await;
    let (third, _) = a.app_login("susan", false).await;
    for app in [&first, &second, &third] {
        app.get("/api/me").await.assert_status(200);
        app.via(&b).get("/api/me").await.assert_status(200);
    }

    first
        .via(&b)
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    first.via(&b).get("/api/me").await.problem(401);
    first.refused_within_a_second().await;

    let listed = third.via(&b).get("/api/sessions").await.json();
    let second_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    third
        .via(&b)
        .request(Method::DELETE, &format!("/api/sessions/{second_id}"))
        .send()
        .await
        .assert_status(204);
    second.via(&b).get("/api/me").await.problem(401);
    second.refused_within_a_second().await;

    let (fourth, _) = a.app_login("susan", false).await;
    fourth.get("/api/me").await.assert_status(200);
    let change = json!({"current_password": PASSWORD, "new_password": "purple monkey dishwasher", "new_password2": "purple monkey dishwasher"});
    third
        .via(&b)
        .post("/api/me/password", &change)
        .await
        .assert_status(204);
    fourth.via(&b).get("/api/me").await.problem(401);
    fourth.refused_within_a_second().await;
    third.get("/api/me").await.assert_status(200);
}

/// Deactivation and deletion by plain SQL (the command line's are tested
/// with it): the database itself tells every instance.
#[tokio::test]
async fn deactivation_and_deletion_in_sql_reach_every_instance() {
    let a = TestApp::spawn().await;
    let b = a.sibling(|_| {}).await;
    let (susan, _) = a.logged_in_app("susan").await;
    let (bob, _) = a.logged_in_app("bob").await;
    for app in [&a, &b] {
        susan.via(app).get("/api/me").await.assert_status(200);
        bob.via(app).get("/api/me").await.assert_status(200);
    }
    a.db.execute("UPDATE users SET is_active = false WHERE username = 'susan'");
    susan.refused_within_a_second().await;
    susan.via(&b).refused_within_a_second().await;
    a.db.execute("DELETE FROM users WHERE username = 'bob'");
    bob.refused_within_a_second().await;
    bob.via(&b).refused_within_a_second().await;
}

/// While its listener is down the instance may miss notifications, so it
/// reads every session from the database.
#[tokio::test]
async fn nothing_is_served_from_memory_while_the_listener_is_down() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    susan.get("/api/me").await.assert_status(200);
    // The listener's connection ends and cannot come back; the pool keeps
    // the connections it has, and so does the test.
    let mut inside = app.db.connect();
    app.db.allow_connections(false);
    app.db.terminate("authd-listener");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Read while deaf: from the database, and not kept.
    susan.get("/api/me").await.assert_status(200);
    unheard(&mut inside, "UPDATE sessions SET revoked_at = now()");
    susan.get("/api/me").await.problem(401);
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
    let browser = b.browser();
    let login = browser.login("susan", false).await.login_body();
    let cookie = browser.cookie("authd_session").unwrap();
    let susan = a.bearer(login.token());
    susan.get("/api/me").await.assert_status(200);
    a.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .assert_status(200);
    susan
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    susan.via(&b).refused_within_a_second().await;
    b.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .problem(401);

    let browser = a.browser();
    let wrong = json!({"username": "susan", "password": "wrong-guess-123"});
    browser.post("/api/login", &wrong).await.problem(401);
    browser
        .via(&b)
        .post("/api/login", &wrong)
        .await
        .problem(401);
    let right = json!({"username": "susan", "password": PASSWORD});
    browser.post("/api/login", &right).await.problem(429);
}

/// The listener's Postgres backend, stopped (`SIGSTOP`) until this is
/// dropped, even when the test fails: a stopped backend answers nothing,
/// not even the `DROP DATABASE` that ends the test.
struct Stalled(u32);

impl Stalled {
    async fn listener_of(app: &TestApp) -> Self {
        #[derive(diesel::QueryableByName)]
        struct Backend {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let mut conn = app.db.connect();
        let pid = crate::helpers::eventually("the listener's connection", || {
            let backends: Vec<Backend> = diesel::sql_query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'authd-listener'",
            )
            .load(&mut conn)
            .unwrap();
            match backends.as_slice() {
                [one] => Ok(one.pid),
                others => Err(format!("{} listener backends", others.len())),
            }
        })
        .await;
        let pid = u32::try_from(pid).unwrap();
        assert!(signal(pid, "-STOP"), "could not stop backend {pid}");
        Self(pid)
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// A listener whose connection stalls without failing (the backend stopped,
/// a network that drops packets) cannot pass a revocation on; the cache
/// stops trusting it soon enough for the revocation to be seen within a
/// second. When it resumes, what it missed is applied before the cache is
/// trusted again: not one stale answer.
#[tokio::test]
async fn a_stalled_listener_neither_keeps_nor_brings_back_a_revoked_session() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    // The login's own notification may arrive after the first read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    susan.get("/api/me").await.assert_status(200);
    susan.get("/api/me").await.assert_status(200);

    let stalled = Stalled::listener_of(&app).await;
    app.db.execute("UPDATE sessions SET revoked_at = now()");
    susan.refused_within_a_second().await;

    // Asked throughout, from before the backend resumes, so that any
    // moment the cache is trusted before the notification is applied shows.
    let resume = tokio::task::spawn_blocking(move || drop(stalled));
    let mut answers = Vec::new();
    let until = std::time::Instant::now() + Duration::from_millis(300);
    while std::time::Instant::now() < until {
        answers.push(susan.get("/api/me").await.status);
    }
    resume.await.unwrap();
    let stale = answers
        .iter()
        .filter(|status| status.as_u16() != 401)
        .count();
    assert_eq!(
        stale,
        0,
        "{stale} of {} answers after the listener resumed were not 401",
        answers.len()
    );
}

/// An instance notes activity from its cache and writes it in batches. A
/// session the database holds idle (here set so in SQL) is not brought
/// back by that write, however recently this instance saw it.
#[tokio::test]
async fn a_batched_activity_write_does_not_revive_a_session_idled_out_in_sql() {
    let a = TestApp::spawn().await;
    let b = a.sibling(|_| {}).await;
    let (susan, _) = a.logged_in_app("susan").await;
    // The login's own notification may arrive after the first read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    susan.via(&b).get("/api/me").await.assert_status(200);

    // Far enough for a use to be noted, not for the session to idle.
    let idle = a.settings.sessions.idle_ttl.std();
    a.advance(idle / 2);
    b.advance(idle / 2);
    // last_seen_at ends nothing when it changes, so nobody is told.
    a.db.execute(&format!(
        "UPDATE sessions SET last_seen_at = last_seen_at - interval '{} seconds'",
        idle.as_secs() + 60
    ));
    // B still holds it as it validated it, and notes the activity.
    susan.via(&b).get("/api/me").await.assert_status(200);
    b.flush_activity().await;

    let seen: chrono::DateTime<chrono::Utc> = {
        use authd::schema::sessions::dsl::*;
        sessions
            .select(last_seen_at)
            .first(&mut a.db.connect())
            .unwrap()
    };
    assert!(
        seen < chrono::Utc::now() - idle,
        "the write brought last_seen_at forward to {seen}"
    );
    susan.get("/api/me").await.problem(401);
    // B keeps its copy until something about susan changes (here a login
    // elsewhere); then it reads the database too.
    a.app_login("susan", false).await;
    susan.via(&b).refused_within_a_second().await;
}

/// Deleting sessions that had ended (the purge's work) tells no instance
/// anything: their end did, when it happened, and an expired session is
/// refused from memory by its expiry. Deleting a live one is news.
#[tokio::test]
async fn deleting_ended_sessions_is_not_news() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let (bob, _) = app.logged_in_app("bob").await;
    bob.post("/api/logout", &json!({})).await.assert_status(204);
    let mut listener = app.db.connect();
    diesel::sql_query("LISTEN authd_invalidate")
        .execute(&mut listener)
        .unwrap();
    let mut heard = || {
        diesel::sql_query("SELECT 1")
            .execute(&mut listener)
            .unwrap();
        listener
            .notifications_iter()
            .map(|notification| notification.unwrap().payload)
            .collect::<Vec<_>>()
    };
    app.db
        .execute("DELETE FROM sessions WHERE revoked_at IS NOT NULL");
    app.db.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember, \
         csrf_token, public_id) SELECT 'expired-' || id, user_id, now() - interval '2 days', \
         now() - interval '2 days', \
         now() - interval '1 day', remember, csrf_token, md5(id) FROM sessions",
    );
    app.db
        .execute("DELETE FROM sessions WHERE expires_at < now()");
    assert_eq!(heard(), Vec::<String>::new());
    app.db.execute("DELETE FROM sessions");
    let heard = heard();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].starts_with("u:"), "{heard:?}");
    susan.refused_within_a_second().await;
}

/// Misses that wait for the database together are read together, and each
/// caller gets its own session: with no cache and one connection, a dozen
/// callers at once (twice each, so that a session is wanted twice in one
/// read), one of them revoked, which alone is refused.
#[tokio::test]
async fn misses_read_together_each_get_their_own_session() {
    let app = TestApp::spawn_with(|settings| {
        settings.sessions.cache_capacity = 0;
        settings.database.pool_size = 1;
    })
    .await;
    let mut callers = Vec::new();
    for i in 0..12 {
        let name = format!("reader{i}");
        callers.push((name.clone(), app.logged_in_app(&name).await.0));
    }
    app.db.execute(
        "UPDATE sessions SET revoked_at = now() \
         WHERE user_id = (SELECT id FROM users WHERE username = 'reader0')",
    );
    for _ in 0..3 {
        let mut asking = tokio::task::JoinSet::new();
        for (name, caller) in callers.iter().chain(&callers) {
            let (name, caller) = (name.clone(), caller.clone());
            asking.spawn(async move { (name, caller.get("/api/me").await) });
        }
        while let Some(answered) = asking.join_next().await {
            let (name, response) = answered.unwrap();
            if name == "reader0" {
                response.problem(401);
            } else {
                response.assert_status(200);
                assert_eq!(response.json()["username"], name.as_str());
            }
        }
    }
}

/// Misses wait for the read under way rather than start one beside it: a
/// second read starts only when a whole batch (64) waits, as behind a slow
/// database, and then it does. Here the database is made slow by a lock on
/// `sessions`, held while the reads pile up behind it. However many of the
/// first ten the first read took, 64 more leave a whole batch waiting.
#[tokio::test]
async fn a_second_read_starts_only_when_a_whole_batch_waits() {
    let app = TestApp::spawn_with(|settings| {
        settings.sessions.cache_capacity = 0;
        settings.database.pool_size = 8; // two reads at most
        settings.database.timeout = crate::helpers::secs(20);
    })
    .await;
    let mut callers = Vec::new();
    for i in 0..74 {
        callers.push(app.logged_in_app(&format!("reader{i}")).await.0);
    }
    let mut lock = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut lock).unwrap();
    diesel::sql_query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .unwrap();
    let mut watch = app.db.connect();

    let mut asking = tokio::task::JoinSet::new();
    let mut ask = |caller: &crate::helpers::Actor| {
        let caller = caller.clone();
        asking.spawn(async move { caller.get("/api/me").await });
    };
    for caller in &callers[..10] {
        ask(caller);
    }
    reads_blocked(&mut watch, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reads_blocked(&mut watch, 1).await;
    for caller in &callers[10..] {
        ask(caller);
    }
    reads_blocked(&mut watch, 2).await;

    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();
    let mut answered = 0;
    while let Some(response) = asking.join_next().await {
        response.unwrap().assert_status(200);
        answered += 1;
    }
    assert_eq!(answered, 74);
}

/// Waits until exactly `expected` session reads wait for a lock.
async fn reads_blocked(watch: &mut PgConnection, expected: i64) {
    for _ in 0..250 {
        let blocked: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM pg_stat_activity \
              WHERE datname = current_database() AND wait_event_type = 'Lock' \
              AND query LIKE 'SELECT \"sessions\".\"id\"%')",
        ))
        .get_result(watch)
        .unwrap();
        if blocked == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {expected} reads waiting for the lock");
}
