//! `/api/sessions`: seeing one's sessions, and ending one, from another
//! device or this one.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::TestApp;

/// Two devices: the list shows both, newest first, with the right
/// `current`, and nothing of another user's.
#[tokio::test]
async fn the_list_shows_every_device_and_which_is_this_one() {
    let app = TestApp::spawn().await;
    app.user("other").await;
    app.app_login("other", false).await;
    let (browser, laptop) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", true).await;

    let from_laptop = browser.get("/api/sessions").await;
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
    let from_phone = phone.get("/api/sessions").await.json();
    assert_eq!(from_phone[0]["current"], true);
    assert_eq!(from_phone[1]["current"], false);
    assert_eq!(from_phone[0]["id"], list[0]["id"]);

    // GET /api/me names the same session.
    let me = browser.get("/api/me").await.json();
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
    let (browser, _) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", true).await;
    let list = browser.get("/api/sessions").await.json();
    let phone_id = session_id(&list, false);

    let end = |id: String| {
        browser
            .request(Method::DELETE, &format!("/api/sessions/{id}"))
            .csrf()
            .send()
    };
    end(phone_id.clone()).await.assert_status(204);
    phone.get("/api/me").await.problem(401);
    browser.get("/api/me").await.assert_status(200);
    end(phone_id).await.problem(404);
    end("0".repeat(32)).await.problem(404);
    end("not-even-hex".into()).await.problem(404);
    // Text Postgres cannot take never reaches it.
    end("abc%00".into()).await.problem(404);
    end(format!("{}%00", "a".repeat(31))).await.problem(404);
    end("A".repeat(32)).await.problem(404);

    let (mallory, _) = app.app_login("mallory", false).await;
    let susan_now = session_id(&browser.get("/api/sessions").await.json(), true);
    mallory
        .request(Method::DELETE, &format!("/api/sessions/{susan_now}"))
        .send()
        .await
        .problem(404);
    browser.get("/api/me").await.assert_status(200);
}

/// Ending the session making the request is a logout, cookies and all.
#[tokio::test]
async fn ending_the_current_session_logs_out() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let id = session_id(&browser.get("/api/sessions").await.json(), true);
    let response = browser
        .request(Method::DELETE, &format!("/api/sessions/{id}"))
        .csrf()
        .send()
        .await;
    response.assert_status(204);
    assert!(
        response
            .set_cookie("authd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    browser.get("/api/me").await.problem(401);
    app.bearer(login.token()).get("/api/me").await.problem(401);
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
