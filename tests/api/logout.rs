//! Logging out: by cookie or by bearer token, one session at a time, and
//! what is left of a session afterwards.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn cookie_logout_revokes_the_session_and_clears_the_cookies() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let cookie = app.cookie("authd_session").unwrap();

    let response = app.logout_with_cookie(login.csrf()).await;
    response.assert_status(204);
    for name in ["authd_session", "csrf_token"] {
        let cleared = response
            .set_cookie(name)
            .unwrap_or_else(|| panic!("{name} not cleared"));
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
    assert!(app.cookie("authd_session").is_none());
    app.get("/api/me").await.problem(401);

    // A copy of the cookie kept by an attacker or a second tab is dead too.
    app.me_with_cookie(&cookie).await.problem(401);
    // ...and so is the bearer token of the same session.
    app.me_with_token(login.token()).await.problem(401);
}

#[tokio::test]
async fn bearer_logout_revokes_the_token() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    app.logout_with_token(login.token())
        .await
        .assert_status(204);
    app.me_with_token(login.token()).await.problem(401);
    let revoked: bool = {
        use authd::schema::sessions::dsl::*;
        use diesel::prelude::*;
        diesel::select(diesel::dsl::exists(
            sessions.filter(revoked_at.is_not_null()),
        ))
        .get_result(&mut app.db.connect())
        .unwrap()
    };
    assert!(revoked, "the session row records its revocation");
}

#[tokio::test]
async fn logging_out_anonymously_is_still_204() {
    let app = TestApp::spawn().await;
    app.request(Method::POST, "/api/logout", None, &[])
        .await
        .assert_status(204);
    app.logout_with_token("garbage").await.assert_status(204);
}

#[tokio::test]
async fn logging_out_one_device_leaves_the_others() {
    let app = TestApp::spawn().await;
    let laptop = app.logged_in("susan").await;
    let (_, phone) = app.new_browser();
    let phone = app.login_from(&phone, "susan", true).await.login_body();
    app.logout_with_token(phone.token())
        .await
        .assert_status(204);
    app.me_with_token(laptop.token()).await.assert_status(200);
}

/// A stale or garbage token beside a live cookie must not hide the cookie:
/// logout ends the cookie's session too, so a copy of it is dead.
#[tokio::test]
async fn logout_beside_a_stale_or_garbage_token_ends_the_cookie_session() {
    let app = TestApp::spawn().await;
    let stale = app.logged_in("susan").await;
    app.logout_with_token(stale.token())
        .await
        .assert_status(204);
    for token in [stale.token(), "garbage", "a.b.c"] {
        let login = app.login("susan", false).await.login_body();
        let cookie = app.cookie("authd_session").unwrap();
        let bearer = format!("Bearer {token}");
        app.request(
            Method::POST,
            "/api/logout",
            None,
            &[("x-csrf-token", login.csrf()), ("authorization", &bearer)],
        )
        .await
        .assert_status(204);
        app.me_with_cookie(&cookie).await.problem(401);
        app.me_with_token(login.token()).await.problem(401);
    }
}

/// Without its CSRF token, a cookie session beside a token that names
/// another session is not ended: the whole request is refused, never
/// answered 204 while a session lives on.
#[tokio::test]
async fn logout_refuses_rather_than_leaving_a_cookie_session_alive() {
    let app = TestApp::spawn().await;
    let cookie_login = app.logged_in("susan").await;
    let cookie = app.cookie("authd_session").unwrap();
    let (_, phone) = app.new_browser();
    let phone = app.login_from(&phone, "susan", false).await.login_body();
    for bearer in [phone.bearer(), "Bearer garbage".to_owned()] {
        app.request(
            Method::POST,
            "/api/logout",
            None,
            &[("authorization", &bearer)],
        )
        .await
        .problem(403);
        app.me_with_cookie(&cookie).await.assert_status(200);
    }
    app.me_with_token(phone.token()).await.assert_status(200);
    // With it, both sessions end.
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[
            ("x-csrf-token", cookie_login.csrf()),
            ("authorization", &phone.bearer()),
        ],
    )
    .await
    .assert_status(204);
    app.me_with_cookie(&cookie).await.problem(401);
    app.me_with_token(phone.token()).await.problem(401);
}

/// `Clear-Site-Data` wipes every cookie of the registrable domain in real
/// browsers, so it is sent only when the operator asks for it; authd's own
/// cookies are deleted by `Set-Cookie` either way.
#[tokio::test]
async fn clear_site_data_is_sent_only_when_configured() {
    for (configured, expected) in [(false, None), (true, Some("\"cookies\""))] {
        let app = TestApp::spawn_with(|s| s.http.clear_site_data = configured).await;
        let login = app.logged_in("susan").await;
        let response = app.logout_with_cookie(login.csrf()).await;
        response.assert_status(204);
        assert_eq!(response.header("clear-site-data"), expected);
        for name in ["authd_session", "csrf_token"] {
            assert!(response.set_cookie(name).unwrap().contains("Max-Age=0"));
        }
    }
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
