//! `MFA_REQUIRED`: an account without a second factor sets one up before
//! its first session, with the login's `mfa_token` standing in for the
//! session it does not have yet; the confirmation is the login.

use serde_json::json;

use super::{
    Authenticator, a_wrong_password_is_told_as_for_anyone, keys, me, mfa_token, recovery_codes,
    second_step,
};
use crate::helpers::{Actor, PASSWORD, TestApp, TestResponse};

async fn required() -> TestApp {
    TestApp::spawn_with(|s| s.mfa.required = true).await
}

/// The login that must set up a factor first: its `mfa_token`.
async fn enrolment_token(client: &Actor, username: &str) -> String {
    let response = client.login(username, false).await;
    assert!(
        response.set_cookies().is_empty(),
        "{:?}",
        response.set_cookies()
    );
    let problem = response.problem(401);
    assert_eq!(
        problem["type"], "urn:authd:problem:mfa-enrollment-required",
        "{problem}"
    );
    assert_eq!(problem["methods"], json!(["totp"]));
    assert!(problem.get("access_token").is_none());
    problem["mfa_token"].as_str().unwrap().to_owned()
}

async fn start_with(client: &Actor, token: &str) -> TestResponse {
    client
        .post("/api/mfa/totp", &json!({"mfa_token": token}))
        .await
}

async fn confirm_with(client: &Actor, token: &str, code: &str) -> TestResponse {
    let body = json!({"mfa_token": token, "code": code});
    client.post("/api/mfa/totp/confirm", &body).await
}

/// With a token instead of a session: no password is asked, and a code
/// left out is told as anywhere else.
#[tokio::test]
async fn a_token_stands_in_for_the_password_but_not_for_the_code() {
    let app = required().await;
    app.user("susan").await;
    let user = app.browser();
    let token = enrolment_token(&user, "susan").await;
    start_with(&user, &token).await.assert_status(200);
    for code in [None, Some(json!(null)), Some(json!(""))] {
        let mut body = json!({"mfa_token": token});
        if let Some(code) = code {
            body["code"] = code;
        }
        let problem = user.post("/api/mfa/totp/confirm", &body).await.problem(422);
        assert_eq!(
            problem["errors"],
            json!({"code": ["This field is required."]}),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_login_without_a_factor_sets_one_up_and_the_confirmation_logs_in() {
    let app = required().await;
    app.user("susan").await;
    // Registered before: the policy holds for accounts made before it too.
    let browser = app.browser();
    let token = enrolment_token(&browser, "susan").await;
    assert_eq!(browser.cookie("authd_session"), None);

    let phone = Authenticator::served(&start_with(&browser, &token).await);
    assert_eq!(phone.totp.account_name, "susan");
    let wrong = confirm_with(&browser, &token, &phone.wrong_code())
        .await
        .problem(422);
    assert!(wrong["errors"]["code"].is_array(), "{wrong}");

    let response = confirm_with(&browser, &token, &phone.code()).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let codes = recovery_codes(&response);
    assert_eq!(codes.len(), 10);
    assert_eq!(body["user"]["username"], "susan");
    assert_eq!(body["token_type"], "Bearer");
    let mut login_keys = keys(&body);
    login_keys.retain(|key| *key != "recovery_codes");
    let plain = TestApp::spawn().await;
    plain.user("plain").await;
    let plain_login = plain.anonymous().login("plain", false).await.json();
    assert_eq!(login_keys, keys(&plain_login), "answered as a login is");

    // The browser has its session, made with the password and the code.
    assert!(response.set_cookie("authd_session").is_some());
    let me_now = me(&browser).await;
    assert_eq!(me_now["session"]["amr"], json!(["pwd", "otp"]));
    assert_eq!(
        me_now["mfa"],
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    me(&app.bearer(response.login_body().token())).await;

    // The token is spent, and the next login asks for a code as usual.
    let again = confirm_with(&app.anonymous(), &token, &phone.code())
        .await
        .problem(401);
    assert_eq!(again["type"], "urn:authd:problem:mfa-expired");
    let client = app.anonymous();
    let token = mfa_token(&client.login("susan", false).await);
    second_step(&client, &token, &phone.next_code(&app))
        .await
        .assert_status(200);
}

/// The enrolment's token does nothing but set up the factor: no second
/// step, no session, no other route; a login's token no enrolment; and a
/// token never rides beside a session.
#[tokio::test]
async fn an_enrolment_token_can_do_nothing_else() {
    let app = required().await;
    app.user("susan").await;
    let client = app.anonymous();
    let token = enrolment_token(&client, "susan").await;
    let phone = Authenticator::served(&start_with(&client, &token).await);

    let step = second_step(&client, &token, &phone.code())
        .await
        .problem(401);
    assert_eq!(step["type"], "urn:authd:problem:mfa-expired");
    app.bearer(&token).get("/api/me").await.problem(401);
    let as_bearer = app
        .bearer(&token)
        .post("/api/mfa/totp/confirm", &json!({"code": phone.code()}))
        .await
        .problem(401);
    assert_eq!(as_bearer["type"], "urn:authd:problem:unauthenticated");

    // A session and a token in one request: refused, whichever would win.
    let (mallory, _) = app.logged_in_app_without_policy("mallory").await;
    let both = start_with(&mallory, &token).await.problem(409);
    assert_eq!(both["type"], "urn:authd:problem:already-authenticated");
    let both = confirm_with(&mallory, &token, &phone.code())
        .await
        .problem(409);
    assert_eq!(both["type"], "urn:authd:problem:already-authenticated");

    // Without either, the routes are for a logged-in owner.
    let anonymous = app
        .anonymous()
        .post("/api/mfa/totp", &json!({"current_password": PASSWORD}))
        .await
        .problem(401);
    assert_eq!(
        anonymous["login_url"],
        "/api/login?next=%2Fapi%2Fmfa%2Ftotp"
    );

    // Still good for its own purpose after all that.
    confirm_with(&client, &token, &phone.code())
        .await
        .assert_status(200);
}

#[tokio::test]
async fn an_enrolment_token_is_bound_to_its_client_and_void_after_five_wrong_codes() {
    let app = required().await;
    app.user("susan").await;
    let user = app.browser_at("127.0.0.2");
    let token = enrolment_token(&user, "susan").await;
    let thief = app.browser_at("127.0.0.3");
    let stolen = start_with(&thief, &token).await.problem(401);
    assert_eq!(stolen["type"], "urn:authd:problem:mfa-expired");

    let phone = Authenticator::served(&start_with(&user, &token).await);
    for _ in 0..5 {
        confirm_with(&user, &token, &phone.wrong_code())
            .await
            .problem(422);
    }
    let void = confirm_with(&user, &token, &phone.code())
        .await
        .problem(401);
    assert_eq!(void["type"], "urn:authd:problem:mfa-expired");
    assert_eq!(
        me_of(&app, "susan").await,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
}

/// A wrong password still gets exactly the generic answer: the policy is
/// told only to someone who knows the password.
#[tokio::test]
async fn a_wrong_password_learns_nothing_of_the_policy() {
    let app = required().await;
    app.user("susan").await;
    a_wrong_password_is_told_as_for_anyone(&app, "susan").await;
}

/// What the account's factor looks like, read through a session made
/// without the policy (a sibling instance with it off).
async fn me_of(app: &TestApp, username: &str) -> serde_json::Value {
    let lax = app.sibling(|s| s.mfa.required = false).await;
    let response = lax.anonymous().login(username, false).await;
    me(&lax.bearer(response.login_body().token())).await["mfa"].clone()
}

impl TestApp {
    /// A logged-in app of a new account, made by a sibling instance without
    /// the policy (the session works on this one too).
    async fn logged_in_app_without_policy(&self, username: &str) -> (Actor, String) {
        let lax = self.sibling(|s| s.mfa.required = false).await;
        let (_, login) = lax.logged_in_app(username).await;
        let token = login.token().to_owned();
        (self.bearer(&token), token)
    }
}

/// A confirmation in flight when the account is disabled (or its password
/// changes) turns nothing on: the factor goes on in the session's own
/// transaction, only for the account as its password found it. The row is
/// held locked so that the confirmation has claimed its token and waits.
#[tokio::test]
async fn a_confirmation_racing_a_deactivation_turns_nothing_on() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    let app = required().await;
    app.user("susan").await;
    let client = app.anonymous();
    let token = enrolment_token(&client, "susan").await;
    let phone = Authenticator::served(&start_with(&client, &token).await);

    let mut holder = app.db.connect();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM users WHERE username = 'susan' FOR UPDATE")
        .unwrap();
    let confirming = tokio::spawn({
        let (client, token, code) = (client.clone(), token.clone(), phone.code());
        async move { confirm_with(&client, &token, &code).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    holder
        .batch_execute("UPDATE users SET is_active = false WHERE username = 'susan'; COMMIT")
        .unwrap();
    let refused = confirming.await.unwrap().problem(403);
    assert_eq!(refused["type"], "urn:authd:problem:inactive-account");

    use authd::schema::totp_factors::dsl::*;
    let on: i64 = totp_factors
        .filter(confirmed_at.is_not_null())
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(on, 0, "no factor was turned on");
    let again = confirm_with(&client, &token, &phone.code())
        .await
        .problem(401);
    assert_eq!(again["type"], "urn:authd:problem:mfa-expired");
}
