//! `GET /api/me`: the current user by cookie or by bearer token, and the
//! 401s for everything else.

use reqwest::Method;

use crate::helpers::TestApp;

#[tokio::test]
async fn me_returns_the_user_by_cookie_and_by_token() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let by_cookie = browser.get("/api/me").await;
    by_cookie.assert_status(200);
    assert_eq!(by_cookie.json()["username"], "susan");
    assert_eq!(by_cookie.header("cache-control"), Some("no-store"));
    let by_token = app.bearer(login.token()).get("/api/me").await;
    let (by_token, by_cookie) = (by_token.json(), by_cookie.json());
    assert_eq!(by_token["id"], by_cookie["id"]);
    // The CSRF token is the cookie session's; a bearer session needs none.
    assert_eq!(by_cookie["csrf_token"], login["csrf_token"]);
    assert!(by_token.get("csrf_token").is_none());
}

#[tokio::test]
async fn anonymous_requests_get_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let response = browser.get("/api/me").await;
    response.problem(401);
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn bad_cookies_are_401_never_500() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let cookie = browser.cookie("authd_session").unwrap();
    let mut flipped = cookie.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.as_str(),
        &cookie[..cookie.len() / 2],
        "garbage",
        "",
        "%%%",
        "{\"actix_identity.user_id\":\"\\\"x\\\"\"}",
    ] {
        app.with_session_cookie(bad)
            .get("/api/me")
            .await
            .problem(401);
    }
}

#[tokio::test]
async fn an_inactive_user_is_logged_out_everywhere() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    app.db.execute("UPDATE users SET is_active = false");
    browser.get("/api/me").await.problem(401);
    app.bearer(login.token()).get("/api/me").await.problem(401);
}

/// A staging proxy's Basic auth must not hide the session cookie.
#[tokio::test]
async fn a_foreign_authorization_scheme_leaves_the_cookie_in_charge() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    browser
        .request(Method::GET, "/api/me")
        .header("authorization", "Basic c3RhZ2luZzpzZWNyZXQ=")
        .send()
        .await
        .assert_status(200);
    // A bearer token that fails is a failed credential, not a fallback.
    browser
        .request(Method::GET, "/api/me")
        .header("authorization", "Bearer garbage")
        .send()
        .await
        .problem(401);
}
