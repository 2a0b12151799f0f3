//! Seeing and ending one's sessions: the list, ending one from another
//! device, and logout's scopes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, secs};

/// Two devices: the list shows both, newest first, with the right
/// `current`, and nothing of another user's.
#[tokio::test]
async fn the_list_shows_every_device_and_which_is_this_one() {
    let app = TestApp::spawn().await;
    app.user("other").await;
    app.device("other", false).await;
    let laptop = app.logged_in("susan").await;
    let phone = app.device("susan", true).await;

    let from_laptop = app.get("/api/sessions").await;
    from_laptop.assert_status(200);
    let list = from_laptop.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["remember"], true, "the phone logged in last");
    assert_eq!(list[0]["current"], false);
    assert_eq!(list[1]["current"], true);
    for session in list {
        assert_eq!(session["ip"], "127.0.0.1");
        for field in ["created_at", "last_seen_at", "expires_at"] {
            assert!(session[field].is_string(), "{field}: {session}");
        }
    }
    let from_phone = app
        .with_token(Method::GET, "/api/sessions", None, phone.token())
        .await
        .json();
    assert_eq!(from_phone[0]["current"], true);
    assert_eq!(from_phone[1]["current"], false);
    assert_eq!(from_phone[0]["id"], list[0]["id"]);

    // GET /api/me names the same session.
    let me = app.get("/api/me").await.json();
    assert_eq!(me["session"]["id"], list[1]["id"]);
    assert_eq!(me["session"]["remember"], false);
    assert_eq!(me["session"]["expires_at"], laptop["expires_at"]);
    assert!(me["last_login_at"].is_string());
}

/// A lost phone: ended from the laptop, its token is dead at once; ending
/// it again, another user's session or an unknown id is 404 alike.
#[tokio::test]
async fn a_device_is_ended_from_another_and_strangers_get_404() {
    let app = TestApp::spawn().await;
    app.user("mallory").await;
    let laptop = app.logged_in("susan").await;
    let phone = app.device("susan", true).await;
    let list = app.get("/api/sessions").await.json();
    let phone_id = session_id(&list, false);

    let end = |id: String| {
        let csrf = laptop.csrf().to_owned();
        let app = &app;
        async move {
            app.request(
                Method::DELETE,
                &format!("/api/sessions/{id}"),
                None,
                &[("x-csrf-token", &csrf)],
            )
            .await
        }
    };
    end(phone_id.clone()).await.assert_status(204);
    app.me_with_token(phone.token()).await.problem(401);
    app.get("/api/me").await.assert_status(200);
    end(phone_id).await.problem(404);
    end("0".repeat(32)).await.problem(404);
    end("not-even-hex".into()).await.problem(404);
    // Text Postgres cannot take never reaches it.
    end("abc%00".into()).await.problem(404);
    end(format!("{}%00", "a".repeat(31))).await.problem(404);
    end("A".repeat(32)).await.problem(404);

    let mallory = app.device("mallory", false).await;
    let susan_now = session_id(&app.get("/api/sessions").await.json(), true);
    app.with_token(
        Method::DELETE,
        &format!("/api/sessions/{susan_now}"),
        None,
        mallory.token(),
    )
    .await
    .problem(404);
    app.get("/api/me").await.assert_status(200);
}

/// Ending the session making the request is a logout, cookies and all.
#[tokio::test]
async fn ending_the_current_session_logs_out() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let id = session_id(&app.get("/api/sessions").await.json(), true);
    let response = app
        .request(
            Method::DELETE,
            &format!("/api/sessions/{id}"),
            None,
            &[("x-csrf-token", login.csrf())],
        )
        .await;
    response.assert_status(204);
    assert!(
        response
            .set_cookie("authd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    app.get("/api/me").await.problem(401);
    app.me_with_token(login.token()).await.problem(401);
}

/// `others` ends every other session and keeps this one (and its
/// cookies); `global` ends them all; by body or query; anything else 422.
#[tokio::test]
async fn logout_scopes_end_others_or_everything() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    let laptop = app.device("susan", false).await;
    let phone = app.device("susan", false).await;
    let tablet = app.device("susan", false).await;
    let response = app
        .with_token(
            Method::POST,
            "/api/logout",
            Some(&json!({"scope": "others"})),
            laptop.token(),
        )
        .await;
    response.assert_status(204);
    assert!(
        response.set_cookie("authd_session").is_none(),
        "this session lives on"
    );
    app.me_with_token(laptop.token()).await.assert_status(200);
    app.me_with_token(phone.token()).await.problem(401);
    app.me_with_token(tablet.token()).await.problem(401);

    let other = app.device("susan", false).await;
    app.with_token(
        Method::POST,
        "/api/logout?scope=global",
        None,
        laptop.token(),
    )
    .await
    .assert_status(204);
    app.me_with_token(laptop.token()).await.problem(401);
    app.me_with_token(other.token()).await.problem(401);

    let last = app.device("susan", false).await;
    for bad in [json!({"scope": "everywhere"}), json!({"scope": 1})] {
        let problem = app
            .with_token(Method::POST, "/api/logout", Some(&bad), last.token())
            .await
            .problem(422);
        assert!(problem["errors"]["scope"].is_array(), "{problem}");
    }
    app.with_token(Method::POST, "/api/logout?scope=nope", None, last.token())
        .await
        .problem(422);
    app.me_with_token(last.token()).await.assert_status(200);
    // A sendBeacon's text/plain body counts like a JSON one; a body of
    // another type is refused, and nothing ends.
    let other = app.device("susan", false).await;
    let logout = |content_type: &'static str, body: &'static [u8]| {
        let (app, bearer) = (&app, last.bearer());
        async move {
            app.raw_request(
                Method::POST,
                "/api/logout",
                &[("authorization", &bearer), ("content-type", content_type)],
                body.to_vec(),
            )
            .await
        }
    };
    logout("application/x-www-form-urlencoded", b"scope=global")
        .await
        .problem(415);
    app.me_with_token(other.token()).await.assert_status(200);
    logout("text/plain;charset=UTF-8", b"{\"scope\":\"others\"}")
        .await
        .assert_status(204);
    app.me_with_token(other.token()).await.problem(401);
    app.me_with_token(last.token()).await.assert_status(200);
    // Local is the default.
    logout("text/plain", b"").await.assert_status(204);
    app.me_with_token(last.token()).await.problem(401);
}

/// Every ended session is in the audit trail.
#[tokio::test]
async fn ending_sessions_is_audited() {
    let app = TestApp::spawn().await;
    let laptop = app.logged_in("susan").await;
    app.device("susan", false).await;
    app.with_token(
        Method::POST,
        "/api/logout?scope=others",
        None,
        laptop.token(),
    )
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

/// Browsers on an allowed origin may send the new methods.
#[tokio::test]
async fn preflights_allow_patch_and_delete() {
    let spa = "https://app.example.com";
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![spa.into()]).await;
    for method in ["PATCH", "DELETE"] {
        let response = app
            .bare(
                Method::OPTIONS,
                "/api/me",
                None,
                &[("origin", spa), ("access-control-request-method", method)],
            )
            .await;
        response.assert_status(200);
        let allowed = response.header("access-control-allow-methods").unwrap();
        assert!(allowed.contains(method), "{allowed}");
    }
}

/// Sessions that ended long ago are purged in the background.
#[tokio::test]
async fn ended_sessions_are_purged_in_the_background() {
    let app = TestApp::spawn_with(|s| {
        s.retention.audit_retention = secs(1);
        s.retention.purge_interval = secs(1);
    })
    .await;
    let login = app.logged_in("susan").await;
    app.logout_with_token(login.token())
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() > 0 {
        assert!(std::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The id of the session whose `current` is `current`.
fn session_id(list: &Value, current: bool) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|session| session["current"] == current)
        .and_then(|session| session["id"].as_str())
        .unwrap()
        .to_owned()
}
