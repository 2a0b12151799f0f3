//! Changing one's password, username or address, and deleting the account,
//! each confirmed by the current password.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use authd::configuration::Bucket;

const NEW: &str = "purple monkey dishwasher";

fn change(current: &str, new: &str, again: &str) -> serde_json::Value {
    json!({"current_password": current, "new_password": new, "new_password2": again})
}

/// The other device is logged out, this one stays; the old password is
/// gone and the new one works.
#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let (laptop, login) = app.logged_in_browser("susan").await;
    let (phone, _) = app.app_login("susan", true).await;
    laptop
        .request(Method::POST, "/api/me/password")
        .json(&change(PASSWORD, NEW, NEW))
        .csrf()
        .send()
        .await
        .assert_status(204);
    phone.get("/api/me").await.problem(401);
    laptop.get("/api/me").await.assert_status(200);
    app.bearer(login.token())
        .get("/api/me")
        .await
        .assert_status(200);

    let login = |password: &'static str| {
        let body = json!({"username": "susan", "password": password});
        let browser = app.browser();
        async move { browser.post("/api/login", &body).await }
    };
    login(PASSWORD).await.problem(401);
    login(NEW).await.assert_status(200);
}

/// The new password obeys the policy, differs from the old and is
/// confirmed; every problem is a 422 naming its field.
#[tokio::test]
async fn a_new_password_is_checked_like_a_registration() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    for (body, field) in [
        (change(PASSWORD, "password", "password"), "new_password"),
        (
            change(PASSWORD, "susan-is-me", "susan-is-me"),
            "new_password",
        ),
        (change(PASSWORD, PASSWORD, PASSWORD), "new_password"),
        (change(PASSWORD, NEW, "something else"), "new_password2"),
        (
            json!({"new_password": NEW, "new_password2": NEW}),
            "current_password",
        ),
        (json!({"current_password": PASSWORD}), "new_password"),
    ] {
        let problem = susan.post("/api/me/password", &body).await.problem(422);
        assert!(problem["errors"][field].is_array(), "{field}: {problem}");
    }
}

/// A wrong current password is refused, audited, and counts toward the
/// login throttle: it is no side door for guessing.
#[tokio::test]
async fn a_wrong_current_password_is_403_and_throttled() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 2)).await;
    let (susan, _) = app.logged_in_app("susan").await;
    for _ in 0..2 {
        let problem = susan
            .post("/api/me/password", &change("wrong-guess-123", NEW, NEW))
            .await
            .problem(403);
        assert_eq!(problem["type"], "urn:authd:problem:wrong-password");
    }
    susan
        .post("/api/me/password", &change(PASSWORD, NEW, NEW))
        .await
        .problem(429);
    app.browser().login("susan", false).await.problem(429);
}

/// Username and address change by the registration rules and messages;
/// the user comes back.
#[tokio::test]
async fn the_username_and_address_change_by_the_registration_rules() {
    let app = TestApp::spawn().await;
    app.user("taken").await;
    let (susan, _) = app.logged_in_app("susan").await;
    let patch =
        |body: serde_json::Value| susan.request(Method::PATCH, "/api/me").json(&body).send();
    let renamed = patch(json!({"username": "Susan_B", "current_password": PASSWORD})).await;
    renamed.assert_status(200);
    assert_eq!(renamed.json()["username"], "Susan_B");
    let moved =
        patch(json!({"email": " S.Bones@Bücher.example ", "current_password": PASSWORD})).await;
    moved.assert_status(200);
    assert_eq!(moved.json()["email"], "s.bones@xn--bcher-kva.example");
    assert_eq!(moved.json()["username"], "Susan_B");
    // Its own name in another case is no conflict.
    patch(json!({"username": "susan_b", "current_password": PASSWORD}))
        .await
        .assert_status(200);

    let problem = patch(
        json!({"username": "TAKEN", "email": "taken@example.com", "current_password": PASSWORD}),
    )
    .await
    .problem(422);
    assert_eq!(
        problem["errors"]["username"],
        json!(["Please use a different username."])
    );
    assert_eq!(
        problem["errors"]["email"],
        json!(["Please use a different email address."])
    );
    let problem = patch(json!({"username": "a b", "email": "nope", "current_password": PASSWORD}))
        .await
        .problem(422);
    assert!(problem["errors"]["username"].is_array() && problem["errors"]["email"].is_array());
    patch(json!({"current_password": PASSWORD}))
        .await
        .problem(422);
    patch(json!({"username": "susan_c"})).await.problem(422);
    let wrong = patch(json!({"username": "susan_c", "current_password": "wrong-guess-123"}))
        .await
        .problem(403);
    assert_eq!(wrong["type"], "urn:authd:problem:wrong-password");
    let me = susan.get("/api/me").await.json();
    assert_eq!(me["username"], "susan_b");
}

/// Deleting the account ends everything at once: the cookie and every
/// token die, and the name is free again.
#[tokio::test]
async fn deleting_the_account_kills_its_cookie_and_tokens() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let cookie = browser.cookie("authd_session").unwrap();
    let (phone, _) = app.app_login("susan", true).await;
    let delete = |body: serde_json::Value| {
        browser
            .request(Method::DELETE, "/api/me")
            .json(&body)
            .csrf()
            .send()
    };
    delete(json!({"current_password": "wrong-guess-123"}))
        .await
        .problem(403);
    delete(json!({})).await.problem(422);
    let deleted = delete(json!({"current_password": PASSWORD})).await;
    deleted.assert_status(204);
    assert!(
        deleted
            .set_cookie("authd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    app.with_session_cookie(&cookie)
        .get("/api/me")
        .await
        .problem(401);
    app.bearer(login.token()).get("/api/me").await.problem(401);
    phone.get("/api/me").await.problem(401);
    let body = json!({"username": "susan", "password": PASSWORD, "email": "susan@example.com", "password2": PASSWORD});
    app.browser()
        .post("/api/register", &body)
        .await
        .assert_status(201);
}

/// Every change is in the audit trail.
#[tokio::test]
async fn account_changes_are_audited() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    susan
        .request(Method::PATCH, "/api/me")
        .json(&json!({"username": "susan2", "current_password": PASSWORD}))
        .send()
        .await
        .assert_status(200);
    susan
        .post("/api/me/password", &change(PASSWORD, NEW, NEW))
        .await
        .assert_status(204);
    susan
        .request(Method::DELETE, "/api/me")
        .json(&json!({"current_password": NEW}))
        .send()
        .await
        .assert_status(204);
    let events: Vec<(String, Option<String>)> = {
        use authd::schema::auth_events::dsl::*;
        use diesel::prelude::*;
        auth_events
            .select((event, identifier))
            .order(id)
            .load(&mut app.db.connect())
            .unwrap()
    };
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        &names[names.len() - 3..],
        ["account_updated", "password_changed", "account_deleted"]
    );
    assert_eq!(events.last().unwrap().1.as_deref(), Some("susan2"));
}

/// A new address is refused an encoded word as a registration is
/// (see `register::encoded_words_are_not_addresses`), and stays as it was.
#[tokio::test]
async fn an_encoded_word_is_refused_as_a_new_address() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let problem = susan
        .request(Method::PATCH, "/api/me")
        .json(&json!({"email": "=?utf-8?q?=61lice?=@example.com", "current_password": PASSWORD}))
        .send()
        .await
        .problem(422);
    assert_eq!(
        problem["errors"],
        json!({"email": ["Invalid email address."]})
    );
    let me = susan.get("/api/me").await.json();
    assert_eq!(me["email"], "susan@example.com");
}
