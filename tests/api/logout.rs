//! Logging out: by cookie or by bearer token, one session at a time, and
//! what is left of a session afterwards.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn cookie_logout_revokes_the_session_and_clears_the_cookies() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let cookie = browser.cookie("authd_session").unwrap();

    let response = browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await;
    response.assert_status(204);
    for name in ["authd_session", "csrf_token"] {
        let cleared = response
            .set_cookie(name)
            .unwrap_or_else(|| panic!("{name} not cleared"));
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
    assert!(browser.cookie("authd_session").is_none());
    browser.get("/api/me").await.problem(401);

    // A copy of the cookie kept by an attacker or a second tab is dead too.
    app.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .problem(401);
    // ...and so is the bearer token of the same session.
    app.bearer(login.token()).get("/api/me").await.problem(401);
}

#[tokio::test]
async fn bearer_logout_revokes_the_token() {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let susan = app.bearer(login.token());
    susan
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    susan.get("/api/me").await.problem(401);
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
    app.browser()
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    app.bearer("garbage")
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
}

#[tokio::test]
async fn logging_out_one_device_leaves_the_others() {
    let app = TestApp::spawn().await;
    let (_, laptop) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", true).await;
    phone
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    app.bearer(laptop.token())
        .get("/api/me")
        .await
        .assert_status(200);
}

/// A stale or garbage token beside a live cookie must not hide the cookie:
/// logout ends the cookie's session too, so a copy of it is dead.
#[tokio::test]
async fn logout_beside_a_stale_or_garbage_token_ends_the_cookie_session() {
    let app = TestApp::spawn().await;
    let (browser, stale) = app.logged_in_browser("susan").await;
    app.bearer(stale.token())
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .assert_status(204);
    for token in [stale.token(), "garbage", "a.b.c"] {
        let login = browser.login("susan", false).await.login_body();
        let cookie = browser.cookie("authd_session").unwrap();
        let bearer = format!("Bearer {token}");
        browser
            .request(Method::POST, "/api/logout")
            .header("x-csrf-token", login.csrf())
            .header("authorization", &bearer)
            .send()
            .await
            .assert_status(204);
        app.with_session_cookie(&cookie)
            .get("/api/me")
            .await
            .problem(401);
        app.bearer(login.token()).get("/api/me").await.problem(401);
    }
}

/// Without its CSRF token, a cookie session beside a token that names
/// another session is not ended: the whole request is refused, never
/// answered 204 while a session lives on.
#[tokio::test]
async fn logout_refuses_rather_than_leaving_a_cookie_session_alive() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let cookie = browser.cookie("authd_session").unwrap();
    let (phone_app, phone) = app.app_login("susan", false).await;
    for bearer in [phone.bearer(), "Bearer garbage".to_owned()] {
        browser
            .request(Method::POST, "/api/logout")
            .header("authorization", &bearer)
            .send()
            .await
            .problem(403);
        app.with_session_cookie(&cookie)
            .get("/api/me")
            .await
            .assert_status(200);
    }
    phone_app.get("/api/me").await.assert_status(200);
    // With it, both sessions end.
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .header("authorization", &phone.bearer())
        .send()
        .await
        .assert_status(204);
    app.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .problem(401);
    phone_app.get("/api/me").await.problem(401);
}

/// `Clear-Site-Data` wipes every cookie of the registrable domain in real
/// browsers, so it is sent only when the operator asks for it; authd's own
/// cookies are deleted by `Set-Cookie` either way.
#[tokio::test]
async fn clear_site_data_is_sent_only_when_configured() {
    for (configured, expected) in [(false, None), (true, Some("\"cookies\""))] {
        let app = TestApp::spawn_with(|s| s.http.clear_site_data = configured).await;
        let (browser, _) = app.logged_in_browser("susan").await;
        let response = browser
            .request(Method::POST, "/api/logout")
            .csrf()
            .send()
            .await;
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
    let (laptop, _) = app.logged_in_app("susan").await;
    let (phone, _) = app.app_login("susan", false).await;
    let (tablet, _) = app.app_login("susan", false).await;
    let response = laptop
        .post("/api/logout", &json!({"scope": "others"}))
        .await;
    response.assert_status(204);
    assert!(
        response.set_cookie("authd_session").is_none(),
        "this session lives on"
    );
    laptop.get("/api/me").await.assert_status(200);
    phone.get("/api/me").await.problem(401);
    tablet.get("/api/me").await.problem(401);

    let (other, _) = app.app_login("susan", false).await;
    laptop
        .request(Method::POST, "/api/logout?scope=global")
        .send()
        .await
        .assert_status(204);
    laptop.get("/api/me").await.problem(401);
    other.get("/api/me").await.problem(401);

    let (last, _) = app.app_login("susan", false).await;
    for bad in [json!({"scope": "everywhere"}), json!({"scope": 1})] {
        let problem = last.post("/api/logout", &bad).await.problem(422);
        assert!(problem["errors"]["scope"].is_array(), "{problem}");
    }
    last.request(Method::POST, "/api/logout?scope=nope")
        .send()
        .await
        .problem(422);
    last.get("/api/me").await.assert_status(200);
    // A sendBeacon's text/plain body counts like a JSON one; a body of
    // another type is refused, and nothing ends.
    let (other, _) = app.app_login("susan", false).await;
    let logout = |content_type: &str, body: &[u8]| {
        last.request(Method::POST, "/api/logout")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    logout("application/x-www-form-urlencoded", b"scope=global")
        .await
        .problem(415);
    other.get("/api/me").await.assert_status(200);
    logout("text/plain;charset=UTF-8", b"{\"scope\":\"others\"}")
        .await
        .assert_status(204);
    other.get("/api/me").await.problem(401);
    last.get("/api/me").await.assert_status(200);
    // Local is the default.
    logout("text/plain", b"").await.assert_status(204);
    last.get("/api/me").await.problem(401);
}
