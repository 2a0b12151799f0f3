//! Passwords: the policy and its messages, bcrypt's 72 bytes, and the hash
//! upgraded when the configured cost rises.

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_password_policy_explains_each_refusal() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let cases = [
        ("short", "at least 8"),
        ("password", "commonly used"),
        ("Baseball", "commonly used"),
        ("qwertyuiop", "commonly used"),
        ("pat_rick", "username"),
        ("xxPAT_RICKxx", "username"),
        ("p.star.99-", "email"),
        ("P.STAR", "at least 8"),
    ];
    for (password, fragment) in cases {
        let body = json!({"username": "pat_rick", "email": "p.star@example.com", "password": password, "password2": password});
        let problem = browser.post("/api/register", &body).await.problem(422);
        let message = problem["errors"]["password"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(fragment), "{password}: {problem}");
    }
    // No composition rules: a long lower-case phrase is fine.
    let good = "purple monkey dishwasher";
    let body = json!({"username": "pat_rick", "email": "p.star@example.com", "password": good, "password2": good});
    browser
        .post("/api/register", &body)
        .await
        .assert_status(201);
}

#[tokio::test]
async fn a_raised_bcrypt_cost_upgrades_the_hash_at_the_next_login() {
    let mut app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    let hash = |app: &TestApp| -> String {
        authd::schema::users::table
            .select(authd::schema::users::password_hash)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(hash(&app).starts_with("$2b$04$"));
    app.restart_with(|s| s.passwords.bcrypt_cost = 5).await;
    browser.login("susan", false).await.assert_status(200);
    let upgraded = hash(&app);
    assert!(upgraded.starts_with("$2b$05$"), "{upgraded}");
    // The new hash still verifies the same password.
    let other = app.browser();
    other.login("susan", false).await.assert_status(200);
    assert_eq!(hash(&app), upgraded, "no second upgrade at the same cost");
}

/// bcrypt reads 72 bytes: exactly 72 is accepted and used in full, and a
/// longer guess that starts with the same 72 bytes does not match.
#[tokio::test]
async fn a_72_byte_password_works_and_longer_guesses_do_not_match() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let password = "horse-battery-".repeat(6)[..72].to_owned();
    assert_eq!(password.len(), 72);
    let body = json!({"username": "susan", "email": "s@example.com", "password": password, "password2": password});
    browser
        .post("/api/register", &body)
        .await
        .assert_status(201);
    let browser = app.browser();
    let longer = format!("{password}extra");
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": longer}),
        )
        .await
        .problem(401);
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": password}),
        )
        .await
        .assert_status(200);
}
