//! A passkey as the second factor of a password login: `methods` names it,
//! the options name only the account's passkeys, `POST /api/login/mfa`
//! takes the assertion, and a refused one counts as a wrong code does.

use serde_json::{Value, json};

use super::{
    Device, ORIGIN, SIBLING, add_passkey, as_json, assert_passkey_failed, finish_login,
    login_options, me, passkey_user, refusal_reasons, refusals, request_options, start_login,
    user_id,
};
use crate::helpers::{Actor, PASSWORD, TestApp, TestResponse};
use crate::mfa::{first_step, mfa_user};

/// Options for answering `token`'s second step with a passkey.
async fn second_factor_options(client: &Actor, token: &str) -> Value {
    let response = start_login(client, &json!({"mfa_token": token})).await;
    response.assert_status(200);
    response.json()
}

async fn passkey_step(
    client: &Actor,
    token: &str,
    started: &Value,
    credential: &Value,
) -> TestResponse {
    let body = json!({
        "mfa_token": token,
        "passkey": {"challenge_id": started["challenge_id"], "credential": credential},
    });
    client.post("/api/login/mfa", &body).await
}

fn allowed_ids(started: &Value) -> Vec<String> {
    let mut ids: Vec<String> = started["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .iter()
        .map(|descriptor| descriptor["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_password_login_is_finished_with_a_passkey() {
    let app = TestApp::spawn().await;
    let (susan, mut laptop, _) = passkey_user(&app, "susan").await;
    let mut phone = Device::new();
    add_passkey(&susan, &mut phone, Some("Phone")).await;
    let (_, bobs, _) = passkey_user(&app, "bob").await;
    let client = app.anonymous();

    let first = client.login("susan", false).await;
    let problem = first.problem(401);
    assert_eq!(
        problem["type"], "urn:authd:problem:mfa-required",
        "{problem}"
    );
    assert_eq!(problem["methods"], json!(["passkey"]));
    assert!(first.set_cookies().is_empty(), "{:?}", first.set_cookies());
    let token = problem["mfa_token"].as_str().unwrap().to_owned();

    let started = second_factor_options(&client, &token).await;
    let mut susans = vec![laptop.credential_id(), phone.credential_id()];
    susans.sort();
    assert_eq!(allowed_ids(&started), susans, "only susan's passkeys");
    assert!(!allowed_ids(&started).contains(&bobs.credential_id()));
    assert_eq!(started["publicKey"]["rpId"], "localhost");
    assert_eq!(started["publicKey"]["userVerification"], "required");

    let credential = laptop.get(&started);
    let response = passkey_step(&client, &token, &started, &credential).await;
    response.assert_status(200);
    let body = response.json();
    assert_eq!(body["user"]["username"], "susan");
    assert_eq!(body["token_type"], "Bearer");
    let session = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(session["session"]["amr"], json!(["pwd", "passkey"]));
    // The token is spent.
    let spent = passkey_step(&client, &token, &started, &credential)
        .await
        .problem(401);
    assert_eq!(spent["type"], "urn:authd:problem:mfa-expired", "{spent}");
    start_login(&client, &json!({"mfa_token": token}))
        .await
        .problem(401);
}

#[tokio::test]
async fn with_totp_too_any_of_the_three_answers() {
    let app = TestApp::spawn().await;
    let (susan, phone, _) = mfa_user(&app, "susan").await;
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    let started = susan.post("/api/passkeys/register/start", &body).await;
    started.assert_status(200);
    let started = started.json();
    let mut device = Device::new();
    let credential = device.create(&started);
    let finish = json!({"challenge_id": started["challenge_id"], "credential": credential});
    susan
        .post("/api/passkeys/register/finish", &finish)
        .await
        .assert_status(201);
    let client = app.anonymous();

    let problem = client.login("susan", false).await.problem(401);
    assert_eq!(
        problem["methods"],
        json!(["totp", "recovery_code", "passkey"])
    );
    let token = problem["mfa_token"].as_str().unwrap().to_owned();
    let started = second_factor_options(&client, &token).await;
    let credential = device.get(&started);
    let response = passkey_step(&client, &token, &started, &credential).await;
    response.assert_status(200);
    let session = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(session["session"]["amr"], json!(["pwd", "passkey"]));

    // A code still answers; starting a passkey ceremony does not spend the token.
    let token = first_step(&client, "susan").await;
    second_factor_options(&client, &token).await;
    let body = json!({"mfa_token": token, "code": phone.next_code(&app)});
    let response = client.post("/api/login/mfa", &body).await;
    response.assert_status(200);
    let session = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(session["session"]["amr"], json!(["pwd", "otp"]));
}

#[tokio::test]
async fn another_accounts_passkey_does_not_answer() {
    let app = TestApp::spawn().await;
    let (_, mut susans, _) = passkey_user(&app, "susan").await;
    let (_, mut bobs, _) = passkey_user(&app, "bob").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;

    // Bob's client ignores allowCredentials and signs with bob's passkey.
    let started = second_factor_options(&client, &token).await;
    let mut options = request_options(&started);
    options.public_key.allow_credentials = bobs.allow_list();
    let credential = as_json(&bobs.sign(ORIGIN, options, true));
    assert_passkey_failed(&passkey_step(&client, &token, &started, &credential).await);
    assert_eq!(refusal_reasons(&app), ["wrong_account"]);
    let (_, reason) = &refusals(&app)[0];
    assert_eq!(reason.as_deref(), Some("wrong_account"));

    // The token is still good for susan's own.
    let started = second_factor_options(&client, &token).await;
    let credential = susans.get(&started);
    passkey_step(&client, &token, &started, &credential)
        .await
        .assert_status(200);
}

/// A ceremony answers the login it was started for, and only at the
/// second step: not another login of the same account, not the
/// passwordless finish; and a passwordless ceremony is no second step.
#[tokio::test]
async fn a_ceremony_is_bound_to_its_login() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let first = first_step(&client, "susan").await;
    let second = first_step(&client, "susan").await;

    let started = second_factor_options(&client, &first).await;
    let credential = device.get(&started);
    assert_passkey_failed(&passkey_step(&client, &second, &started, &credential).await);

    let started = second_factor_options(&client, &first).await;
    let credential = device.get(&started);
    assert_passkey_failed(&finish_login(&client, &started, &credential).await);

    let started = login_options(&client).await;
    let credential = device.get(&started);
    assert_passkey_failed(&passkey_step(&client, &first, &started, &credential).await);

    assert_eq!(
        refusal_reasons(&app),
        ["challenge", "challenge", "challenge"]
    );
    // Both logins are still owed, and answered.
    for token in [&first, &second] {
        let started = second_factor_options(&client, token).await;
        let credential = device.get(&started);
        passkey_step(&client, token, &started, &credential)
            .await
            .assert_status(200);
    }
}

#[tokio::test]
async fn five_refused_passkeys_void_the_token() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    for _ in 0..5 {
        let started = second_factor_options(&client, &token).await;
        let credential = device.get_at(SIBLING, &started);
        assert_passkey_failed(&passkey_step(&client, &token, &started, &credential).await);
    }
    let voided = start_login(&client, &json!({"mfa_token": token}))
        .await
        .problem(401);
    assert_eq!(voided["type"], "urn:authd:problem:mfa-expired", "{voided}");
    assert_eq!(refusal_reasons(&app), ["origin"; 5]);
    let susan = Some(user_id(&app, "susan"));
    assert!(refusals(&app).iter().all(|(user, _)| *user == susan));

    // The account is not locked: a new login, the same passkey.
    let token = first_step(&client, "susan").await;
    let started = second_factor_options(&client, &token).await;
    let credential = device.get(&started);
    passkey_step(&client, &token, &started, &credential)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn four_refused_passkeys_leave_the_token_good() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    for _ in 0..4 {
        let started = second_factor_options(&client, &token).await;
        let credential = device.get_at(SIBLING, &started);
        assert_passkey_failed(&passkey_step(&client, &token, &started, &credential).await);
    }
    let started = second_factor_options(&client, &token).await;
    let credential = device.get(&started);
    passkey_step(&client, &token, &started, &credential)
        .await
        .assert_status(200);
}

/// The counter is judged against the one stored when the assertion is
/// checked, not the one stored when the ceremony started.
#[tokio::test]
async fn a_counter_that_went_backwards_is_refused_at_the_second_step_too() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    let second_step = second_factor_options(&client, &token).await;
    let passwordless = login_options(&client).await;
    // Signed first, presented last.
    let earlier = device.get(&second_step);
    let later = device.get(&passwordless);
    finish_login(&client, &passwordless, &later)
        .await
        .assert_status(200);
    assert_passkey_failed(&passkey_step(&client, &token, &second_step, &earlier).await);
    assert_eq!(refusal_reasons(&app), ["counter"]);
}

#[tokio::test]
async fn malformed_second_steps_are_422_and_unknown_tokens_expired() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let (_, totp_only, _) = mfa_user(&app, "tina").await;
    let client = app.anonymous();

    let expired = start_login(&client, &json!({"mfa_token": "A".repeat(43)}))
        .await
        .problem(401);
    assert_eq!(expired["type"], "urn:authd:problem:mfa-expired");
    let token = first_step(&client, "tina").await;
    let problem = start_login(&client, &json!({"mfa_token": token}))
        .await
        .problem(422);
    assert!(problem["errors"]["mfa_token"].is_array(), "{problem}");
    // Tina's token is untouched.
    let body = json!({"mfa_token": token, "code": totp_only.next_code(&app)});
    client
        .post("/api/login/mfa", &body)
        .await
        .assert_status(200);

    let token = first_step(&client, "susan").await;
    let started = second_factor_options(&client, &token).await;
    let credential = device.get(&started);
    let both = json!({
        "mfa_token": token,
        "code": "123456",
        "passkey": {"challenge_id": started["challenge_id"], "credential": credential},
    });
    let problem = client.post("/api/login/mfa", &both).await.problem(422);
    assert!(problem["errors"]["code"].is_array(), "{problem}");
    passkey_step(&client, &token, &started, &credential)
        .await
        .assert_status(200);
}
