//! How long a session lives: its lifetime, the idle timeout (and the
//! activity that keeps a session in use alive), what survives a restart,
//! what ends it for good, and the purge of what has ended.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::Method;

use crate::helpers::{TestApp, secs};

#[tokio::test]
async fn sessions_and_tokens_expire() {
    let app = TestApp::spawn_with(|s| {
        s.sessions.ttl = secs(2);
        s.sessions.remember_ttl = secs(3);
    })
    .await;
    let browser = app.browser();
    app.user("susan").await;
    let plain = browser.login("susan", false).await.login_body();
    let phone = app.browser();
    let remembered = phone.login("susan", true).await.login_body();
    browser.get("/api/me").await.assert_status(200);

    // Past the plain session's lifetime, within the remembered one's.
    app.advance(Duration::from_millis(2200));
    browser.get("/api/me").await.problem(401);
    app.bearer(plain.token()).get("/api/me").await.problem(401);
    phone.get("/api/me").await.assert_status(200);

    app.advance(Duration::from_millis(1000));
    phone.get("/api/me").await.problem(401);
    app.bearer(remembered.token())
        .get("/api/me")
        .await
        .problem(401);
}

#[tokio::test]
async fn idle_plain_sessions_end_but_remembered_ones_do_not() {
    let app = TestApp::spawn_with(|s| s.sessions.idle_ttl = secs(2)).await;
    let browser = app.browser();
    app.user("susan").await;
    let plain = browser.login("susan", false).await.login_body();
    let phone = app.browser();
    let remembered = phone.login("susan", true).await.login_body();
    app.advance(Duration::from_millis(2500));
    browser.get("/api/me").await.problem(401);
    app.bearer(plain.token()).get("/api/me").await.problem(401);
    app.bearer(remembered.token())
        .get("/api/me")
        .await
        .assert_status(200);
}

/// However short the idle timeout, a session in use is never ended by it:
/// activity is noted at least every quarter of the timeout.
#[tokio::test]
async fn a_session_in_use_outlives_a_short_idle_timeout() {
    let app = TestApp::spawn_with(|s| s.sessions.idle_ttl = secs(3)).await;
    let (browser, login) = app.logged_in_browser("susan").await;
    for _ in 0..5 {
        app.advance(Duration::from_secs(1));
        browser.get("/api/me").await.assert_status(200);
        app.bearer(login.token())
            .get("/api/me")
            .await
            .assert_status(200);
        // What the background flush writes within the second.
        app.flush_activity().await;
    }
    app.advance(Duration::from_millis(3500));
    browser.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let susan = app.bearer(login.token());
    use authd::schema::sessions::dsl::*;
    let seen = |app: &TestApp| -> chrono::DateTime<chrono::Utc> {
        sessions
            .select(last_seen_at)
            .first(&mut app.db.connect())
            .unwrap()
    };
    let at_login = seen(&app);
    for _ in 0..3 {
        susan.get("/api/me").await.assert_status(200);
    }
    // Whatever was noted is written now, as the background flush would.
    app.flush_activity().await;
    assert_eq!(seen(&app), at_login, "no write within the minute");
    // A minute and a half later.
    app.advance(Duration::from_secs(90));
    let stale = seen(&app);
    susan.get("/api/me").await.assert_status(200);
    // Written off the request path, in the next batch.
    app.flush_activity().await;
    assert!(
        seen(&app) > stale + chrono::TimeDelta::seconds(80),
        "activity after a minute is noted"
    );
}

/// A backlog of activity bigger than one statement's chunk is written
/// whole, each session with its own time, even after a flush was stopped
/// part way. (Written as one statement, a big enough backlog outlived the
/// statement timeout at every try.)
#[tokio::test]
async fn a_backlog_of_activity_is_written_in_chunks_and_whole() {
    use authd::domain::SessionToken;
    use authd::schema::sessions::dsl::*;
    let app = TestApp::spawn().await;
    app.logged_in_app("susan").await;
    app.db.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember, \
         csrf_token, public_id) \
         SELECT md5('a' || i) || md5('b' || i), user_id, now() - interval '2 hours', \
         now() - interval '2 hours', now() + interval '1 day', true, md5('csrf' || i), md5('a' || i) \
         FROM sessions, generate_series(1, 2500) AS i",
    );
    let backlog: Vec<String> = sessions
        .select(id)
        .filter(last_seen_at.lt(chrono::Utc::now() - chrono::TimeDelta::hours(1)))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(backlog.len(), 2500);

    let activity = authd::services::sessions::activity::Activity::default();
    let start = chrono::Utc::now();
    for (n, token) in backlog.iter().enumerate() {
        let at = start - chrono::TimeDelta::seconds(i64::try_from(n % 7).unwrap());
        activity.note(&SessionToken::presented(token.clone()), at);
    }
    let pool = authd::db::pool(
        &app.db.url(),
        authd::db::PoolOptions {
            size: 1,
            min_idle: 0,
            timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(10),
            pooled: false,
        },
    );
    // A flush stopped part way (the periodic one is aborted at shutdown)
    // leaves what it did not write noted for the next.
    let stopped = tokio::time::timeout(Duration::from_millis(1), activity.flush(&pool, secs(1800)));
    assert!(
        stopped.await.is_err(),
        "2,500 sessions written within a millisecond"
    );
    // Activity noted meanwhile is newer than what the cut-off flush took.
    let later = start + chrono::TimeDelta::seconds(5);
    activity.note(&SessionToken::presented(backlog[0].clone()), later);
    activity.flush(&pool, secs(1800)).await;

    let seen: Vec<(String, chrono::DateTime<chrono::Utc>)> = sessions
        .select((id, last_seen_at))
        .filter(id.eq_any(&backlog))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(seen.len(), 2500);
    for (token, at) in seen {
        let n = backlog.iter().position(|noted| *noted == token).unwrap();
        let noted = if n == 0 {
            later
        } else {
            start - chrono::TimeDelta::seconds(i64::try_from(n % 7).unwrap())
        };
        // Postgres keeps microseconds.
        assert!(
            (at - noted).abs() < chrono::TimeDelta::milliseconds(1),
            "{token}: {at} against {noted}"
        );
    }
}

#[tokio::test]
async fn sessions_survive_a_server_restart_with_the_same_key() {
    let mut app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    app.restart_with(|_| {}).await;
    browser.get("/api/me").await.assert_status(200);
    app.bearer(login.token())
        .get("/api/me")
        .await
        .assert_status(200);
}

/// Deactivation ends every session for good, by whatever path it is made
/// (here plain SQL, as an operator might): re-activating the account does
/// not bring a copied cookie or token back.
#[tokio::test]
async fn deactivation_revokes_sessions_and_reactivation_does_not_revive_them() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let cookie = browser.cookie("authd_session").unwrap();
    let (phone, _) = app.app_login("susan", true).await;

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
    app.bearer(login.token()).refused_within_a_second().await;
    app.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .problem(401);
    phone.get("/api/me").await.problem(401);
    // A fresh login works again.
    app.browser().login("susan", false).await.assert_status(200);
}

/// Sessions that ended long ago are purged in the background.
#[tokio::test]
async fn ended_sessions_are_purged_in_the_background() {
    let app = TestApp::spawn_with(|s| {
        s.retention.audit_retention = secs(1);
        s.retention.purge_interval = secs(1);
    })
    .await;
    let (susan, _) = app.logged_in_app("susan").await;
    susan
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    app.db
        .execute("UPDATE sessions SET revoked_at = now() - interval '1 hour'");
    let count = || -> i64 {
        use authd::schema::sessions::dsl::*;
        use diesel::prelude::*;
        sessions.count().get_result(&mut app.db.connect()).unwrap()
    };
    assert_eq!(count(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() > 0 {
        assert!(std::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
