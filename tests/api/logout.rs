//! Logging out: by cookie or by bearer token, one session at a time, and
//! what is left of a session afterwards.

use reqwest::Method;

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
