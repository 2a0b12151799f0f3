//! Logging in with a passkey alone: answered as a login is, with `amr`
//! `passkey`; and each way an assertion is refused, audited with its reason.

use std::time::Duration;

use authd::configuration::Bucket;
use serde_json::{Value, json};

use super::{
    ORIGIN, SIBLING, as_json, assert_passkey_failed, count, events, finish_login, list,
    login_options, me, passkey_login, passkey_user, refusal_reasons, refusals, request_options,
    start_login, user_id,
};
use crate::helpers::TestApp;

fn keys(body: &Value) -> Vec<&String> {
    let mut keys: Vec<_> = body.as_object().unwrap().keys().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_passkey_alone_logs_in_as_a_password_login_does() {
    let app = TestApp::spawn().await;
    let (_, mut device, passkey) = passkey_user(&app, "susan").await;
    app.user("plain").await;
    let browser = app.browser();

    let started = login_options(&browser).await;
    let challenge_id = started["challenge_id"].as_str().unwrap();
    assert!(challenge_id.len() >= 32, "{challenge_id}");
    let options = &started["publicKey"];
    assert_eq!(options["rpId"], "localhost", "{options}");
    assert_eq!(options["userVerification"], "required", "{options}");
    let allowed = options["allowCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(allowed.is_empty(), "names no credential: {options}");

    let credential = device.get(&started);
    let response = finish_login(&browser, &started, &credential).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let plain = app.anonymous().login("plain", false).await.json();
    assert_eq!(keys(&body), keys(&plain), "answered as a login is");
    assert_eq!(body["user"]["username"], "susan");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["next"], "/");
    assert_eq!(body["remember_me"], false);
    assert!(
        response.set_cookie("authd_session").is_some(),
        "{:?}",
        response.set_cookies()
    );
    assert!(response.set_cookie("csrf_token").is_some());

    // The cookie session and the bearer token are the same session.
    let by_cookie = me(&browser).await;
    let by_token = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(by_cookie["username"], "susan");
    assert_eq!(by_cookie["session"]["amr"], json!(["passkey"]));
    assert_eq!(by_token["session"]["id"], by_cookie["session"]["id"]);
    assert!(by_cookie["last_login_at"].is_string());

    let used = list(&browser).await;
    assert_eq!(used[0]["id"], passkey["id"]);
    assert!(used[0]["last_used_at"].is_string(), "{:?}", used[0]);
    // Susan's password login when she was registered, plain's, and this one.
    assert_eq!(count(&events(&app), "login_success"), 3);
    assert!(refusals(&app).is_empty());
}

#[tokio::test]
async fn remember_me_and_next_are_honoured() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let credential = device.get(&started);
    let body = json!({
        "challenge_id": started["challenge_id"],
        "credential": credential,
        "remember_me": true,
        "next": "/settings?tab=keys",
    });
    let response = client.post("/api/passkeys/login/finish", &body).await;
    response.assert_status(200);
    let login = response.json();
    assert_eq!(login["remember_me"], true);
    assert_eq!(login["next"], "/settings?tab=keys");
    let session = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(session["session"]["remember"], true);
}

#[tokio::test]
async fn a_challenge_is_finished_once() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let credential = device.get(&started);
    finish_login(&client, &started, &credential)
        .await
        .assert_status(200);
    assert_passkey_failed(&finish_login(&client, &started, &credential).await);
    // A fresh assertion for the used challenge does no better.
    let again = device.get(&started);
    assert_passkey_failed(&finish_login(&client, &started, &again).await);
    assert_eq!(refusal_reasons(&app), ["challenge", "challenge"]);
    let susan = Some(user_id(&app, "susan"));
    assert!(refusals(&app).iter().all(|(user, _)| *user == susan));
}

#[tokio::test]
async fn a_challenge_expires_after_five_minutes() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();

    let started = login_options(&client).await;
    app.advance(Duration::from_secs(4 * 60 + 50));
    let credential = device.get(&started);
    finish_login(&client, &started, &credential)
        .await
        .assert_status(200);

    let started = login_options(&client).await;
    app.advance(Duration::from_secs(5 * 60 + 1));
    let credential = device.get(&started);
    assert_passkey_failed(&finish_login(&client, &started, &credential).await);
    assert_eq!(refusal_reasons(&app), ["challenge"]);
}

#[tokio::test]
async fn a_challenge_id_never_issued_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let credential = device.get(&started);
    let forged = json!({"challenge_id": "A".repeat(43), "publicKey": started["publicKey"]});
    assert_passkey_failed(&finish_login(&client, &forged, &credential).await);
    let missing = json!({"credential": credential});
    let problem = client
        .post("/api/passkeys/login/finish", &missing)
        .await
        .problem(422);
    assert!(problem["errors"]["challenge_id"].is_array(), "{problem}");
    let problem = client
        .post(
            "/api/passkeys/login/finish",
            &json!({"challenge_id": started["challenge_id"]}),
        )
        .await
        .problem(422);
    assert!(problem["errors"]["credential"].is_array(), "{problem}");
    // The real challenge was not spent by any of that.
    finish_login(&client, &started, &credential)
        .await
        .assert_status(200);
}

/// A page the RP ID covers but the server does not allow (a phishing page
/// on a sibling domain, another port, another scheme) gets nothing.
#[tokio::test]
async fn an_assertion_made_on_another_origin_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    for origin in [SIBLING, "http://localhost:4000", "https://localhost:3000"] {
        let started = login_options(&client).await;
        let credential = device.get_at(origin, &started);
        assert_passkey_failed(&finish_login(&client, &started, &credential).await);
    }
    assert_eq!(refusal_reasons(&app), ["origin", "origin", "origin"]);
    let susan = Some(user_id(&app, "susan"));
    assert!(refusals(&app).iter().all(|(user, _)| *user == susan));
    // The passkey itself is fine.
    passkey_login(&client, &mut device).await.assert_status(200);
}

/// Signed for another relying party, by a client that did not check that
/// the page is under it: the right origin, the wrong RP ID hash.
#[tokio::test]
async fn an_assertion_for_another_rp_id_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let mut options = request_options(&started);
    options.public_key.rp_id = "example.com".into();
    let credential = as_json(&device.sign(ORIGIN, options, false));
    assert_passkey_failed(&finish_login(&client, &started, &credential).await);
    assert_eq!(refusal_reasons(&app), ["rp_id"]);
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let mut credential = device.sign(ORIGIN, request_options(&started), true);
    let last = credential.response.signature.len() - 2;
    credential.response.signature[last] ^= 0x01;
    assert_passkey_failed(&finish_login(&client, &started, &as_json(&credential)).await);
    assert_eq!(refusal_reasons(&app), ["signature"]);
    // Nothing was spent on it but the challenge: the passkey still works.
    passkey_login(&client, &mut device).await.assert_status(200);
}

/// A credential presented with the user handle of another account: the
/// credential is bob's, the handle says susan.
#[tokio::test]
async fn a_user_handle_that_is_not_the_credentials_owner_is_refused() {
    let app = TestApp::spawn().await;
    let (_, susans, _) = passkey_user(&app, "susan").await;
    let (_, mut bobs, _) = passkey_user(&app, "bob").await;
    let client = app.anonymous();
    let started = login_options(&client).await;
    let mut credential = bobs.sign(ORIGIN, request_options(&started), true);
    credential.response.user_handle = Some(susans.user_handle());
    assert_passkey_failed(&finish_login(&client, &started, &as_json(&credential)).await);
    assert_eq!(refusal_reasons(&app), ["wrong_account"]);
    // Bob's own handle is the one his passkey logs in with.
    passkey_login(&client, &mut bobs).await.assert_status(200);
}

/// Two assertions signed in one order and presented in the other: the
/// second presented has a counter at or below the stored one, as a copy of
/// the key's would.
#[tokio::test]
async fn a_counter_that_went_backwards_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    let earlier = login_options(&client).await;
    let later = login_options(&client).await;
    let earlier_credential = device.get(&earlier);
    let later_credential = device.get(&later);
    finish_login(&client, &later, &later_credential)
        .await
        .assert_status(200);
    assert_passkey_failed(&finish_login(&client, &earlier, &earlier_credential).await);
    assert_eq!(refusal_reasons(&app), ["counter"]);
}

#[tokio::test]
async fn refused_passkeys_count_toward_the_login_throttle() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 3)).await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    let client = app.anonymous();
    for _ in 0..3 {
        let started = login_options(&client).await;
        let credential = device.get_at(SIBLING, &started);
        assert_passkey_failed(&finish_login(&client, &started, &credential).await);
    }
    let refused = passkey_login(&client, &mut device).await;
    refused.problem(429);
    assert!(refused.header("retry-after").is_some());
    client.login("susan", false).await.problem(429);
    assert!(events(&app).contains(&"login_throttled".to_owned()));
}

/// `MFA_REQUIRED` is met by a passkey alone: user verification is a
/// second factor of its own.
#[tokio::test]
async fn a_passkey_login_meets_mfa_required() {
    let mut app = TestApp::spawn().await;
    let (_, mut device, _) = passkey_user(&app, "susan").await;
    app.restart_with(|s| s.mfa.required = true).await;
    let client = app.anonymous();
    let response = passkey_login(&client, &mut device).await;
    response.assert_status(200);
    let session = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(session["session"]["amr"], json!(["passkey"]));
    // The password alone owes the passkey, not an enrolment.
    let problem = client.login("susan", false).await.problem(401);
    assert_eq!(
        problem["type"], "urn:authd:problem:mfa-required",
        "{problem}"
    );
    assert_eq!(problem["methods"], json!(["passkey"]));
}

#[tokio::test]
async fn a_logged_in_client_cannot_log_in_again() {
    let app = TestApp::spawn().await;
    let (susan, mut device, _) = passkey_user(&app, "susan").await;
    let started = login_options(&susan).await;
    let credential = device.get(&started);
    let problem = finish_login(&susan, &started, &credential)
        .await
        .problem(409);
    assert_eq!(problem["type"], "urn:authd:problem:already-authenticated");
}

/// Anyone may start a passkey login, and each start stores a ceremony
/// until it expires: so many from one client address, then `429` (nothing
/// stored); another address is not held up.
#[tokio::test]
async fn starting_passkey_logins_is_limited_per_client_address() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::PasskeyLogin, 3)).await;
    let ceremonies = || {
        use diesel::prelude::*;
        authd::schema::passkey_ceremonies::table
            .count()
            .get_result::<i64>(&mut app.db.connect())
            .unwrap()
    };
    let flooder = app.browser_at("127.0.0.7");
    for _ in 0..3 {
        login_options(&flooder).await;
    }
    let refused = start_login(&flooder, &json!({})).await;
    refused.problem(429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(ceremonies(), 3);
    login_options(&app.browser_at("127.0.0.8")).await;
    assert_eq!(ceremonies(), 4);
}
