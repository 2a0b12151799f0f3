//! The second factor: a TOTP authenticator with recovery codes. Enrolment,
//! the login's two steps, codes used once, the second step's token and its
//! limits, step-up before sensitive changes, and what is stored and logged.
//!
//! Codes come from totp-rs, an implementation independent of the server's,
//! fed the `otpauth://` URI the server serves (and itself checked against
//! RFC 6238's vectors), at the server's time: the tests move its clock
//! rather than wait for the next 30-second step.

use std::cell::Cell;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

mod required;
mod reset;

use crate::helpers::mail_sink::MailSink;
use crate::helpers::{Actor, PASSWORD, TestApp, TestResponse};
use authd::configuration::{Bucket, SecretKey};

const NEW: &str = "purple-monkey-dishwasher";
const STEP: Duration = Duration::from_secs(30);

/// The reference the other tests trust: totp-rs reproduces RFC 6238
/// Appendix B's SHA-1 vectors.
#[test]
fn totp_rs_agrees_with_rfc_6238() {
    let secret = b"12345678901234567890".to_vec();
    let totp = TOTP::new(Algorithm::SHA1, 8, 1, 30, secret, None, String::new()).unwrap();
    for (time, code) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(totp.generate(time), code, "at {time}");
    }
}

// Enrolment.

/// The URI is what an authenticator app reads; a pending factor does
/// nothing until a code from it is confirmed.
#[tokio::test]
async fn enrolment_serves_a_uri_and_a_code_from_it_turns_the_factor_on() {
    let app = TestApp::spawn_with(|s| s.mfa.issuer = "Example Inc".into()).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let before = me(&susan).await;
    assert_eq!(
        before["mfa"],
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    assert_eq!(before["session"]["amr"], json!(["pwd"]));

    let refused = start(&susan, "wrong-password-123").await.problem(403);
    assert_eq!(refused["type"], "urn:authd:problem:wrong-password");
    let response = start(&susan, PASSWORD).await;
    response.assert_status(200);
    let enrolment = response.json();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Example%20Inc:susan?"),
        "{uri}"
    );
    for parameter in [
        "issuer=Example%20Inc",
        "algorithm=SHA1",
        "digits=6",
        "period=30",
    ] {
        assert!(uri.contains(parameter), "{parameter} in {uri}");
    }
    let totp = TOTP::from_url(uri).unwrap();
    assert_eq!(
        totp.get_secret_base32(),
        enrolment["secret"].as_str().unwrap()
    );
    assert_eq!(totp.issuer.as_deref(), Some("Example Inc"));
    assert_eq!(totp.account_name, "susan");
    assert!(matches!(totp.algorithm, Algorithm::SHA1));
    assert_eq!((totp.digits, totp.step), (6, 30));
    assert!(totp.secret.len() >= 16, "at least 128 bits");

    // Pending: the login is still one step.
    app.anonymous()
        .login("susan", false)
        .await
        .assert_status(200);
    assert_eq!(me(&susan).await["mfa"]["totp"], false);

    let phone = Authenticator::new(totp);
    let response = confirm(&susan, &phone.code()).await;
    response.assert_status(200);
    let codes = recovery_codes(&response);
    assert_eq!(codes.len(), 10);
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    for code in &codes {
        assert!(is_recovery_code(code), "{code}");
    }
    assert_eq!(
        me(&susan).await["mfa"],
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    first_step(&app.anonymous(), "susan").await;
}

/// A password or a code left out, `null` or empty is one mistake, told in
/// the words every route uses for it.
#[tokio::test]
async fn a_missing_password_or_code_is_told_as_on_every_route() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    for (path, field) in [
        ("/api/mfa/totp", "current_password"),
        ("/api/mfa/totp/confirm", "code"),
    ] {
        for body in [json!({}), json!({field: null}), json!({field: ""})] {
            let problem = susan.post(path, &body).await.problem(422);
            assert_eq!(
                problem["errors"],
                json!({field: ["This field is required."]}),
                "{path} {body}"
            );
        }
    }
}

#[tokio::test]
async fn confirming_with_a_wrong_code_turns_nothing_on() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let nothing_pending = confirm(&susan, "123456").await.problem(422);
    assert!(nothing_pending["errors"]["code"].is_array());

    let phone = Authenticator::served(&start(&susan, PASSWORD).await);
    for typed in [phone.wrong_code(), "12345".into(), "abcdef".into()] {
        let problem = confirm(&susan, &typed).await.problem(422);
        assert!(problem["errors"]["code"].is_array(), "{typed}: {problem}");
    }
    let missing = susan
        .post("/api/mfa/totp/confirm", &json!({}))
        .await
        .problem(422);
    assert!(missing["errors"]["code"].is_array());
    assert_eq!(
        me(&susan).await["mfa"],
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    app.anonymous()
        .login("susan", false)
        .await
        .assert_status(200);
    assert!(!events(&app).contains(&"mfa_enabled".to_owned()));

    // The right code still turns it on.
    confirm(&susan, &phone.code()).await.assert_status(200);
}

#[tokio::test]
async fn enrolling_again_while_the_factor_is_on_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (susan, phone, _) = mfa_user(&app, "susan").await;
    let problem = start(&susan, PASSWORD).await.problem(409);
    assert_eq!(problem["type"], "urn:authd:problem:mfa-already-enabled");
    // The factor in place is untouched.
    let token = first_step(&app.anonymous(), "susan").await;
    second_step(&app.anonymous(), &token, &phone.next_code(&app))
        .await
        .assert_status(200);
}

// The login's two steps.

#[tokio::test]
async fn an_app_logs_in_in_two_steps() {
    let app = TestApp::spawn().await;
    app.user("plain").await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let client = app.anonymous();

    let first = client.login("susan", false).await;
    let problem = first.problem(401);
    assert_eq!(problem["type"], "urn:authd:problem:mfa-required");
    assert_eq!(problem["methods"], json!(["totp", "recovery_code"]));
    let token = problem["mfa_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    assert!(problem.get("access_token").is_none());
    assert!(first.set_cookies().is_empty(), "{:?}", first.set_cookies());

    let response = second_step(&client, &token, &phone.next_code(&app)).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let plain = client.login("plain", false).await.json();
    assert_eq!(keys(&body), keys(&plain), "answered as a login is");
    assert_eq!(body["user"]["username"], "susan");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["next"], "/");
    assert_eq!(body["remember_me"], false);

    let app_client = app.bearer(response.login_body().token());
    let me = me(&app_client).await;
    assert_eq!(me["username"], "susan");
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp"]));
    assert!(me["last_login_at"].is_string());
}

/// Someone without the password learns nothing about the factor.
#[tokio::test]
async fn a_wrong_password_is_the_usual_invalid_credentials() {
    let app = TestApp::spawn().await;
    mfa_user(&app, "susan").await;
    a_wrong_password_is_told_as_for_anyone(&app, "susan").await;
}

/// Asserts that a wrong password for `username` gets exactly what a wrong
/// password for nobody gets.
async fn a_wrong_password_is_told_as_for_anyone(app: &TestApp, username: &str) {
    let client = app.anonymous();
    let body = |username: &str| json!({"username": username, "password": "wrong-password"});
    let wrong = client.post("/api/login", &body(username)).await;
    let unknown = client.post("/api/login", &body("nobody")).await;
    assert_eq!(
        wrong.problem(401)["type"],
        "urn:authd:problem:invalid-credentials"
    );
    assert!(wrong.json().get("mfa_token").is_none());
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.header("www-authenticate"),
        unknown.header("www-authenticate")
    );
}

/// The password alone sets no cookie: the session starts at the second
/// step, with its cookie and a CSRF token that works.
#[tokio::test]
async fn a_browser_gets_its_cookies_only_at_the_second_step() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let browser = app.browser();

    let first = browser.login("susan", false).await;
    let token = first.problem(401)["mfa_token"].as_str().unwrap().to_owned();
    assert!(first.set_cookies().is_empty(), "{:?}", first.set_cookies());
    assert_eq!(browser.cookie("authd_session"), None);
    assert_eq!(browser.cookie("csrf_token"), None);
    browser.get("/api/me").await.problem(401);

    let second = second_step(&browser, &token, &phone.next_code(&app)).await;
    second.assert_status(200);
    let csrf = second.json()["csrf_token"].as_str().unwrap().to_owned();
    assert!(second.set_cookie("authd_session").is_some());
    assert_eq!(browser.cookie("csrf_token"), Some(csrf));
    let me = me(&browser).await;
    assert_eq!(me["session"]["amr"], json!(["pwd", "otp"]));

    browser
        .request(Method::POST, "/api/logout")
        .send()
        .await
        .problem(403);
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    browser.get("/api/me").await.problem(401);
}

#[tokio::test]
async fn next_and_remember_me_are_carried_to_the_second_step() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;

    let browser = app.browser();
    let login = json!({"username": "susan", "password": PASSWORD, "remember_me": true, "next": "/posts?page=2"});
    let token = mfa_token(&browser.post("/api/login", &login).await);
    let response = second_step(&browser, &token, &phone.next_code(&app)).await;
    response.assert_status(200);
    assert_eq!(response.json()["next"], "/posts?page=2");
    assert_eq!(response.json()["remember_me"], true);
    let cookie = response.set_cookie("authd_session").unwrap();
    assert!(cookie.contains("Max-Age="), "persistent: {cookie}");
    assert_eq!(me(&browser).await["session"]["remember"], true);

    // As judged at the first step: an unsafe target is no target.
    let browser = app.browser();
    let login = json!({"username": "susan", "password": PASSWORD, "next": "//evil.com"});
    let token = mfa_token(&browser.post("/api/login", &login).await);
    let response = second_step(&browser, &token, &phone.next_code(&app)).await;
    response.assert_status(200);
    assert_eq!(response.json()["next"], "/");
    assert_eq!(response.json()["remember_me"], false);
    let cookie = response.set_cookie("authd_session").unwrap();
    assert!(
        !cookie.contains("Max-Age=") && !cookie.contains("Expires"),
        "{cookie}"
    );
}

// Recovery codes.

/// Typed as people type them (no dashes, any case); each works once, and
/// the count left shows at once, also to sessions opened before.
#[tokio::test]
async fn a_recovery_code_logs_in_once() {
    let app = TestApp::spawn().await;
    let (susan, _, codes) = mfa_user(&app, "susan").await;
    me(&susan).await;

    let client = app.anonymous();
    let typed = codes[3].replace('-', "").to_uppercase();
    let token = first_step(&client, "susan").await;
    let response = recovery_step(&client, &token, &typed).await;
    response.assert_status(200);
    let recovered = app.bearer(response.login_body().token());
    let me_now = me(&recovered).await;
    assert_eq!(me_now["session"]["amr"], json!(["pwd", "recovery"]));
    assert_eq!(me_now["mfa"]["recovery_codes_left"], 9);
    assert_eq!(me(&susan).await["mfa"]["recovery_codes_left"], 9);

    let token = first_step(&client, "susan").await;
    let again = recovery_step(&client, &token, &codes[3]).await.problem(401);
    assert_eq!(again["type"], "urn:authd:problem:invalid-code");
    // Another one, as shown (with dashes), still works.
    recovery_step(&client, &token, &codes[4])
        .await
        .assert_status(200);
    assert_eq!(me(&susan).await["mfa"]["recovery_codes_left"], 8);
}

/// Second steps racing on one token: one is answered; the others spend
/// nothing (before, each spent its recovery code and only one logged in).
#[tokio::test]
async fn second_steps_racing_on_one_token_spend_one_code() {
    let app = TestApp::spawn().await;
    let (susan, _, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    let answers = futures_util::future::join_all(
        codes[..6]
            .iter()
            .map(|code| recovery_step(&client, &token, code)),
    )
    .await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|answer| answer.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    for answer in answers.iter().filter(|answer| answer.status != 200u16) {
        assert_eq!(answer.problem(401)["type"], "urn:authd:problem:mfa-expired");
    }
    assert_eq!(me(&susan).await["mfa"]["recovery_codes_left"], 9);
}

#[tokio::test]
async fn each_session_records_how_it_was_made() {
    let app = TestApp::spawn().await;
    let (susan, phone, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    let with_code = second_step(&client, &token, &phone.next_code(&app)).await;
    let token = first_step(&client, "susan").await;
    let with_recovery = recovery_step(&client, &token, &codes[0]).await;

    let mut seen = Vec::new();
    for session in [
        &susan,
        &app.bearer(with_code.login_body().token()),
        &app.bearer(with_recovery.login_body().token()),
    ] {
        seen.push(me(session).await["session"]["amr"].clone());
    }
    assert_eq!(
        seen,
        [
            json!(["pwd"]),
            json!(["pwd", "otp"]),
            json!(["pwd", "recovery"])
        ]
    );

    let list = susan.get("/api/sessions").await;
    list.assert_status(200);
    let mut listed: Vec<Value> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["amr"].clone())
        .collect();
    listed.reverse();
    assert_eq!(listed, seen, "newest first");
}

// Codes used once, and the second step's token.

/// RFC 6238 §5.2: a step is accepted once per account, whichever instance
/// sees it; the code that confirmed enrolment is spent too.
#[tokio::test]
async fn a_totp_code_is_accepted_once_across_instances() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let phone = Authenticator::served(&start(&susan, PASSWORD).await);
    let enrolling = phone.code();
    confirm(&susan, &enrolling).await.assert_status(200);
    let sibling = app.sibling(|_| {}).await;
    let client = app.anonymous();

    let token = first_step(&client, "susan").await;
    let spent = second_step(&client, &token, &enrolling).await.problem(401);
    assert_eq!(spent["type"], "urn:authd:problem:invalid-code");

    // Both instances' clocks move on together.
    phone.advance(&app, STEP);
    sibling.advance(STEP);
    let code = phone.code();
    second_step(&client, &token, &code).await.assert_status(200);
    for instance in [&app, &sibling] {
        let client = client.via(instance);
        let token = first_step(&client, "susan").await;
        let replayed = second_step(&client, &token, &code).await.problem(401);
        assert_eq!(replayed["type"], "urn:authd:problem:invalid-code");
    }

    phone.advance(&app, STEP);
    sibling.advance(STEP);
    let on_sibling = client.via(&sibling);
    let token = first_step(&on_sibling, "susan").await;
    second_step(&on_sibling, &token, &phone.code())
        .await
        .assert_status(200);
}

/// The compare-and-set, not the order of requests, makes a code single
/// use: raced at two instances, one login gets in.
#[tokio::test]
async fn the_same_code_raced_at_two_instances_logs_in_once() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let sibling = app.sibling(|_| {}).await;
    let (here, there) = (app.anonymous(), app.anonymous().via(&sibling));
    let (first, second) = (
        first_step(&here, "susan").await,
        first_step(&there, "susan").await,
    );
    phone.advance(&app, STEP);
    sibling.advance(STEP);
    let code = phone.code();
    let (a, b) = tokio::join!(
        second_step(&here, &first, &code),
        second_step(&there, &second, &code)
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    let refused = if a.status == 401 { &a } else { &b };
    assert_eq!(
        refused.problem(401)["type"],
        "urn:authd:problem:invalid-code"
    );
}

/// A typo costs one of the token's tries, not the token.
#[tokio::test]
async fn a_wrong_code_is_invalid_code_and_the_token_stays_good() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    let code = phone.next_code(&app);
    for typed in [phone.wrong_code(), "not-a-code".into(), "aaaa-bbbb".into()] {
        let problem = second_step(&client, &token, &typed).await.problem(401);
        assert_eq!(problem["type"], "urn:authd:problem:invalid-code", "{typed}");
    }
    // As an authenticator app shows it.
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    second_step(&client, &token, &spaced)
        .await
        .assert_status(200);
    assert!(events(&app).contains(&"mfa_failure".to_owned()));
}

#[tokio::test]
async fn five_wrong_codes_void_the_token() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    for _ in 0..5 {
        let problem = second_step(&client, &token, &phone.wrong_code())
            .await
            .problem(401);
        assert_eq!(problem["type"], "urn:authd:problem:invalid-code");
    }
    let code = phone.next_code(&app);
    let voided = second_step(&client, &token, &code).await.problem(401);
    assert_eq!(voided["type"], "urn:authd:problem:mfa-expired");

    // The account is not locked: a new login, the same (unspent) code.
    let token = first_step(&client, "susan").await;
    second_step(&client, &token, &code).await.assert_status(200);
}

/// New tokens are no way around the limit: wrong codes count against the
/// account's login throttle, as wrong passwords do.
#[tokio::test]
async fn wrong_codes_across_tokens_reach_the_login_throttle() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 3)).await;
    let (_, phone, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let first = first_step(&client, "susan").await;
    for _ in 0..2 {
        second_step(&client, &first, &phone.wrong_code())
            .await
            .problem(401);
    }
    let second = first_step(&client, "susan").await;
    second_step(&client, &second, &phone.wrong_code())
        .await
        .problem(401);

    let refused = second_step(&client, &second, &phone.next_code(&app)).await;
    refused.problem(429);
    assert!(refused.header("retry-after").is_some());
    recovery_step(&client, &second, &codes[0])
        .await
        .problem(429);
    client.login("susan", false).await.problem(429);
    let events = events(&app);
    assert_eq!(count(&events, "mfa_failure"), 3, "{events:?}");
    assert!(events.contains(&"login_throttled".to_owned()));
}

#[tokio::test]
async fn an_unknown_token_is_mfa_expired_and_a_malformed_step_422() {
    let app = TestApp::spawn().await;
    let (_, phone, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let code = phone.next_code(&app);
    for token in ["", "x", &"A".repeat(43)] {
        let response = second_step(&client, token, &code).await;
        if token.is_empty() {
            assert!(response.problem(422)["errors"]["mfa_token"].is_array());
        } else {
            let problem = response.problem(401);
            assert_eq!(problem["type"], "urn:authd:problem:mfa-expired", "{token}");
        }
    }
    let token = first_step(&client, "susan").await;
    for body in [
        json!({"mfa_token": token}),
        json!({"mfa_token": token, "code": ""}),
        json!({"mfa_token": token, "code": code, "recovery_code": codes[0]}),
    ] {
        let problem = client.post("/api/login/mfa", &body).await.problem(422);
        assert!(problem["errors"]["code"].is_array(), "{body}: {problem}");
    }
    second_step(&client, &token, &code).await.assert_status(200);
    let used = second_step(&client, &token, &phone.next_code(&app))
        .await
        .problem(401);
    assert_eq!(used["type"], "urn:authd:problem:mfa-expired");
}

#[tokio::test]
async fn the_token_expires_after_five_minutes() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let client = app.anonymous();

    let token = first_step(&client, "susan").await;
    phone.advance(&app, Duration::from_secs(4 * 60 + 50));
    second_step(&client, &token, &phone.code())
        .await
        .assert_status(200);

    let token = first_step(&client, "susan").await;
    phone.advance(&app, Duration::from_secs(5 * 60 + 1));
    let expired = second_step(&client, &token, &phone.code())
        .await
        .problem(401);
    assert_eq!(expired["type"], "urn:authd:problem:mfa-expired");
}

/// A stolen token is no use elsewhere: another client address is told the
/// token is not valid, before its code is even looked at.
#[tokio::test]
async fn a_token_is_bound_to_the_client_address() {
    let app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let user = app.browser_at("127.0.0.2");
    let thief = app.browser_at("127.0.0.3");
    let token = first_step(&user, "susan").await;
    let code = phone.next_code(&app);
    let stolen = second_step(&thief, &token, &code).await.problem(401);
    assert_eq!(stolen["type"], "urn:authd:problem:mfa-expired");
    // Neither the token nor the code was spent.
    second_step(&user, &token, &code).await.assert_status(200);
    me(&user).await;
}

// Step-up before sensitive changes.

/// Each sensitive change, for an account with the factor: without a code
/// 422 on `code`, with a wrong one 403 `wrong-code`, and nothing changed.
#[tokio::test]
async fn each_sensitive_change_needs_a_code() {
    let app = TestApp::spawn().await;
    let (susan, phone, codes) = mfa_user(&app, "susan").await;
    let changes = [
        (
            Method::POST,
            "/api/me/password",
            json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW}),
        ),
        (
            Method::PATCH,
            "/api/me",
            json!({"current_password": PASSWORD, "email": "new@example.com"}),
        ),
        (
            Method::DELETE,
            "/api/me",
            json!({"current_password": PASSWORD}),
        ),
        (
            Method::DELETE,
            "/api/mfa/totp",
            json!({"current_password": PASSWORD}),
        ),
        (
            Method::POST,
            "/api/mfa/recovery-codes",
            json!({"current_password": PASSWORD}),
        ),
    ];
    for (method, path, body) in changes {
        let missing = send(&susan, method.clone(), path, &body).await.problem(422);
        assert!(missing["errors"]["code"].is_array(), "{path}: {missing}");
        let mut wrong = body.clone();
        wrong["code"] = json!(phone.wrong_code());
        let refused = send(&susan, method.clone(), path, &wrong)
            .await
            .problem(403);
        assert_eq!(refused["type"], "urn:authd:problem:wrong-code", "{path}");
        // A wrong password is still told as such, code or not.
        wrong["current_password"] = json!("wrong-password-123");
        let refused = send(&susan, method, path, &wrong).await.problem(403);
        assert_eq!(
            refused["type"], "urn:authd:problem:wrong-password",
            "{path}"
        );
    }
    let me = me(&susan).await;
    assert_eq!(me["email"], "susan@example.com");
    assert_eq!(
        me["mfa"],
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    recovery_step(&client, &token, &codes[0])
        .await
        .assert_status(200);

    // A code spent at a login is spent for a change too.
    let code = phone.next_code(&app);
    let token = first_step(&client, "susan").await;
    second_step(&client, &token, &code).await.assert_status(200);
    let body = json!({"current_password": PASSWORD, "code": code});
    let replayed = susan
        .post("/api/mfa/recovery-codes", &body)
        .await
        .problem(403);
    assert_eq!(replayed["type"], "urn:authd:problem:wrong-code");
}

#[tokio::test]
async fn the_right_code_lets_each_change_through() {
    let app = TestApp::spawn().await;
    let (susan, phone, codes) = mfa_user(&app, "susan").await;

    // A new name is not a new way into the account: no code.
    let renamed = send(
        &susan,
        Method::PATCH,
        "/api/me",
        &json!({"current_password": PASSWORD, "username": "susanna"}),
    )
    .await;
    renamed.assert_status(200);
    assert_eq!(renamed.json()["username"], "susanna");

    let body = json!({"current_password": PASSWORD, "email": "new@example.com", "code": phone.next_code(&app)});
    let moved = send(&susan, Method::PATCH, "/api/me", &body).await;
    moved.assert_status(200);
    assert_eq!(moved.json()["email"], "new@example.com");

    // A recovery code is a code too.
    let body = json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW, "code": codes[0]});
    send(&susan, Method::POST, "/api/me/password", &body)
        .await
        .assert_status(204);
    let client = app.anonymous();
    let login = json!({"username": "susanna", "password": NEW});
    mfa_token(&client.post("/api/login", &login).await);

    let body = json!({"current_password": NEW, "code": phone.next_code(&app)});
    send(&susan, Method::DELETE, "/api/me", &body)
        .await
        .assert_status(204);
    susan.get("/api/me").await.problem(401);
    let gone = client.post("/api/login", &login).await.problem(401);
    assert_eq!(gone["type"], "urn:authd:problem:invalid-credentials");
}

/// Renewing the codes: the old set stops working, the new one works.
#[tokio::test]
async fn regenerating_recovery_codes_voids_the_old_set() {
    let app = TestApp::spawn().await;
    let (susan, phone, old) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    recovery_step(&client, &token, &old[0])
        .await
        .assert_status(200);
    assert_eq!(me(&susan).await["mfa"]["recovery_codes_left"], 9);

    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    let response = susan.post("/api/mfa/recovery-codes", &body).await;
    response.assert_status(200);
    let new = recovery_codes(&response);
    assert_eq!(new.len(), 10);
    assert!(
        new.iter()
            .all(|code| is_recovery_code(code) && !old.contains(code))
    );
    assert_eq!(me(&susan).await["mfa"]["recovery_codes_left"], 10);

    let token = first_step(&client, "susan").await;
    let void = recovery_step(&client, &token, &old[1]).await.problem(401);
    assert_eq!(void["type"], "urn:authd:problem:invalid-code");
    recovery_step(&client, &token, &new[1])
        .await
        .assert_status(200);
}

#[tokio::test]
async fn turning_the_factor_off_takes_password_and_code_then_login_is_one_step() {
    let app = TestApp::spawn().await;
    let (susan, phone, _) = mfa_user(&app, "susan").await;
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    send(&susan, Method::DELETE, "/api/mfa/totp", &body)
        .await
        .assert_status(204);
    assert_eq!(
        me(&susan).await["mfa"],
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    let login = app.anonymous().login("susan", false).await;
    login.assert_status(200);
    let me = me(&app.bearer(login.login_body().token())).await;
    assert_eq!(me["session"]["amr"], json!(["pwd"]));

    let again = send(&susan, Method::DELETE, "/api/mfa/totp", &body)
        .await
        .problem(409);
    assert_eq!(again["type"], "urn:authd:problem:mfa-not-enabled");
    // Off means off: enrolment can start afresh.
    start(&susan, PASSWORD).await.assert_status(200);
}

/// A reset by mail proves the address, not the authenticator: the factor
/// stays, and a second step owed from before the reset is void.
#[tokio::test]
async fn a_password_reset_by_mail_keeps_the_factor() {
    let sink = MailSink::start();
    let url = sink.url();
    let app = TestApp::spawn_with(|s| {
        s.mail.smtp_url = Some(url.into());
        s.mail.app_url = "https://app.example.com".into();
        s.throttle.set_limit(Bucket::RecoveryAddress, 1000);
        s.throttle.set_limit(Bucket::RecoveryIp, 1000);
    })
    .await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let before = first_step(&client, "susan").await;

    client
        .post(
            "/api/password/forgot",
            &json!({"email": "susan@example.com"}),
        )
        .await
        .assert_status(202);
    app.deliver_pending_mail().await;
    let mail = sink
        .expect_mails("susan@example.com", "Reset your password", 1)
        .remove(0);
    client
        .post(
            "/api/password/reset",
            &json!({"token": mail.token(), "new_password": NEW, "new_password2": NEW}),
        )
        .await
        .assert_status(204);

    let code = phone.next_code(&app);
    let stale = second_step(&client, &before, &code).await.problem(401);
    assert_eq!(stale["type"], "urn:authd:problem:mfa-expired");
    let login = json!({"username": "susan", "password": NEW});
    let token = mfa_token(&client.post("/api/login", &login).await);
    let response = second_step(&client, &token, &code).await;
    response.assert_status(200);
    let me = me(&app.bearer(response.login_body().token())).await;
    assert_eq!(me["mfa"]["totp"], true);
}

// What is stored, audited and logged.

/// A copy of the database is no copy of anyone's authenticator, recovery
/// codes or second-step token.
#[tokio::test]
async fn secrets_codes_and_tokens_are_not_stored_in_plain() {
    let app = TestApp::spawn().await;
    let (_, phone, codes) = mfa_user(&app, "susan").await;
    let token = first_step(&app.anonymous(), "susan").await;
    let mut conn = app.db.connect();

    let sealed = sealed_secret(&app);
    let plain = &phone.totp.secret;
    assert!(!contains(&sealed, plain), "the secret is stored in plain");
    assert!(!contains(
        &sealed,
        phone.totp.get_secret_base32().as_bytes()
    ));

    let digests: Vec<Vec<u8>> = {
        use authd::schema::recovery_codes::dsl::*;
        recovery_codes.select(digest).load(&mut conn).unwrap()
    };
    assert_eq!(digests.len(), 10);
    for code in &codes {
        let normalised = code.replace('-', "").to_lowercase();
        let expected = Sha256::digest(normalised.as_bytes()).to_vec();
        assert!(digests.contains(&expected), "{code} as a SHA-256 digest");
        for stored in &digests {
            assert!(!contains(stored, normalised.as_bytes()));
        }
    }

    let hashes: Vec<Vec<u8>> = {
        use authd::schema::mfa_challenges::dsl::*;
        mfa_challenges.select(token_hash).load(&mut conn).unwrap()
    };
    assert_eq!(hashes, [Sha256::digest(token.as_bytes()).to_vec()]);
}

/// SECRET_KEY rotated, the old one kept as SECRET_KEY_PREVIOUS: the
/// factor keeps working, is sealed again under the new key at its next
/// use, and then needs the old key no more.
#[tokio::test]
async fn a_rotated_secret_key_keeps_the_factor() {
    let mut app = TestApp::spawn().await;
    let (_, phone, _) = mfa_user(&app, "susan").await;
    let before = sealed_secret(&app);
    app.restart_with(|s| {
        s.secrets.previous = Some(s.secrets.key.clone());
        s.secrets.key = SecretKey::new(b"rotated-secret-k".repeat(4)).unwrap();
    })
    .await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    second_step(&client, &token, &phone.next_code(&app))
        .await
        .assert_status(200);
    assert_ne!(sealed_secret(&app), before, "sealed again");

    app.restart_with(|s| s.secrets.previous = None).await;
    let token = first_step(&client, "susan").await;
    second_step(&client, &token, &phone.next_code(&app))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_audit_trail_records_each_step() {
    let app = TestApp::spawn().await;
    let (susan, phone, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    second_step(&client, &token, &phone.wrong_code())
        .await
        .problem(401);
    second_step(&client, &token, &phone.next_code(&app))
        .await
        .assert_status(200);
    let token = first_step(&client, "susan").await;
    recovery_step(&client, &token, &codes[0])
        .await
        .assert_status(200);
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    susan
        .post("/api/mfa/recovery-codes", &body)
        .await
        .assert_status(200);
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    send(&susan, Method::DELETE, "/api/mfa/totp", &body)
        .await
        .assert_status(204);

    let second_factor: Vec<String> = events(&app)
        .into_iter()
        .filter(|event| event.starts_with("mfa_") || event.starts_with("recovery_code"))
        .collect();
    assert_eq!(
        second_factor,
        [
            "mfa_enabled",
            "mfa_failure",
            "mfa_success",
            "recovery_code_used",
            "recovery_codes_regenerated",
            "mfa_disabled",
        ]
    );
    let logins = count(&events(&app), "login_success");
    assert_eq!(logins, 3, "the enrolling login and the two second steps");
}

/// The server's own log, at debug, over every flow that handles a second
/// factor's secret, code or token. Installs a global subscriber, so it
/// needs a process of its own (as nextest runs each test).
#[tokio::test]
async fn no_secret_code_or_token_reaches_the_logs() {
    let capture = Capture::install();
    tracing::info!("capture check");
    assert!(
        !capture.text().is_empty(),
        "another subscriber was installed first; this test needs its own process (nextest)"
    );

    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let enrolment = start(&susan, PASSWORD).await.json();
    let uri = enrolment["otpauth_uri"].as_str().unwrap().to_owned();
    let phone = Authenticator::new(TOTP::from_url(&uri).unwrap());
    let enrolling = phone.code();
    let confirmed = confirm(&susan, &enrolling).await;
    let mut codes = recovery_codes(&confirmed);

    let client = app.anonymous();
    let first = first_step(&client, "susan").await;
    let wrong = phone.wrong_code();
    second_step(&client, &first, &wrong).await.problem(401);
    let right = phone.next_code(&app);
    second_step(&client, &first, &right)
        .await
        .assert_status(200);
    let second = first_step(&client, "susan").await;
    let typed = codes[0].replace('-', "").to_uppercase();
    recovery_step(&client, &second, &typed)
        .await
        .assert_status(200);
    let step_up = phone.next_code(&app);
    let renewed = susan
        .post(
            "/api/mfa/recovery-codes",
            &json!({"current_password": PASSWORD, "code": step_up}),
        )
        .await;
    codes.extend(recovery_codes(&renewed));
    drop(app);

    let logs = capture.text();
    assert!(
        logs.contains("mfa_success") && logs.contains("recovery_code_used"),
        "the audit events are logged"
    );
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let mut secrets = vec![
        ("secret", secret.clone()),
        ("secret, lower case", secret.to_lowercase()),
        ("otpauth URI", uri),
        ("first mfa_token", first),
        ("second mfa_token", second),
        ("typed recovery code", typed),
    ];
    for code in &codes {
        secrets.push(("recovery code", code.clone()));
        secrets.push(("recovery code, plain", code.replace('-', "")));
    }
    for (name, secret) in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "the {name} appears in the logs"
        );
    }
    // Six digits occur in timestamps and durations by chance; a code in a
    // field's value would be quoted.
    for (name, code) in [
        ("enrolling code", enrolling),
        ("wrong code", wrong),
        ("right code", right),
        ("step-up code", step_up),
    ] {
        for quoted in [
            format!("\"{code}\""),
            format!("={code}"),
            format!("\\\"{code}"),
        ] {
            assert!(!logs.contains(&quoted), "the {name} appears in the logs");
        }
    }
}

// Shared steps.

/// The user's authenticator app: totp-rs on what the server served. Its
/// clock is the server's, real time plus how far the test moved that
/// (which the harness keeps to itself): moves go through here.
pub(crate) struct Authenticator {
    pub(crate) totp: TOTP,
    ahead: Cell<Duration>,
}

impl Authenticator {
    fn new(totp: TOTP) -> Self {
        Self {
            totp,
            ahead: Cell::default(),
        }
    }

    /// The app set up from the URI an enrolment's start served.
    fn served(started: &TestResponse) -> Self {
        started.assert_status(200);
        let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
        Self::new(TOTP::from_url(uri).unwrap())
    }

    fn now(&self) -> u64 {
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + self.ahead.get()).as_secs()
    }

    /// The code the app shows at the server's time.
    fn code(&self) -> String {
        self.totp.generate(self.now())
    }

    /// Moves `app`'s clock on, and this app's with it.
    fn advance(&self, app: &TestApp, by: Duration) {
        app.advance(by);
        self.ahead.set(self.ahead.get() + by);
    }

    /// The next step's code: one the server has not accepted yet.
    pub(crate) fn next_code(&self, app: &TestApp) -> String {
        self.advance(app, STEP);
        self.code()
    }

    /// A code of no step within a minute of the server's time (a fixed
    /// "000000" would be right one time in a few hundred thousand).
    fn wrong_code(&self) -> String {
        let now = self.now();
        let near: Vec<String> = (0..=4)
            .map(|k| self.totp.generate(now + k * 30 - 60))
            .collect();
        (0..)
            .map(|n| format!("{n:06}"))
            .find(|code| !near.contains(code))
            .unwrap()
    }
}

/// Registers `username`, logs it in from an app and turns the factor on:
/// the app, the authenticator and the recovery codes. The current step is
/// spent: a login's code is [`Authenticator::next_code`].
pub(crate) async fn mfa_user(app: &TestApp, username: &str) -> (Actor, Authenticator, Vec<String>) {
    let (user, _) = app.logged_in_app(username).await;
    let (phone, codes) = enrol(&user).await;
    (user, phone, codes)
}

/// Turns the factor on for the logged-in `user`.
async fn enrol(user: &Actor) -> (Authenticator, Vec<String>) {
    let started = start(user, PASSWORD).await;
    started.assert_status(200);
    let phone = Authenticator::served(&started);
    let confirmed = confirm(user, &phone.code()).await;
    confirmed.assert_status(200);
    (phone, recovery_codes(&confirmed))
}

async fn start(user: &Actor, password: &str) -> TestResponse {
    user.post("/api/mfa/totp", &json!({"current_password": password}))
        .await
}

async fn confirm(user: &Actor, code: &str) -> TestResponse {
    user.post("/api/mfa/totp/confirm", &json!({"code": code}))
        .await
}

pub(crate) fn recovery_codes(response: &TestResponse) -> Vec<String> {
    response.assert_status(200);
    serde_json::from_value(response.json()["recovery_codes"].clone()).unwrap()
}

/// Six groups of four lower-case letters and digits, as the issue says.
fn is_recovery_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 6
        && groups.iter().all(|group| {
            group.len() == 4
                && group
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Logs `username` in with the password, as `client`: the `mfa_token` of
/// the second step owed.
pub(crate) async fn first_step(client: &Actor, username: &str) -> String {
    mfa_token(&client.login(username, false).await)
}

fn mfa_token(response: &TestResponse) -> String {
    let problem = response.problem(401);
    assert_eq!(
        problem["type"], "urn:authd:problem:mfa-required",
        "{problem}"
    );
    problem["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(client: &Actor, token: &str, code: &str) -> TestResponse {
    client
        .post("/api/login/mfa", &json!({"mfa_token": token, "code": code}))
        .await
}

pub(crate) async fn recovery_step(client: &Actor, token: &str, code: &str) -> TestResponse {
    let body = json!({"mfa_token": token, "recovery_code": code});
    client.post("/api/login/mfa", &body).await
}

async fn send(user: &Actor, method: Method, path: &str, body: &Value) -> TestResponse {
    user.request(method, path).json(body).send().await
}

async fn me(user: &Actor) -> Value {
    let response = user.get("/api/me").await;
    response.assert_status(200);
    response.json()
}

fn keys(body: &Value) -> Vec<&String> {
    let mut keys: Vec<_> = body.as_object().unwrap().keys().collect();
    keys.sort();
    keys
}

fn events(app: &TestApp) -> Vec<String> {
    use authd::schema::auth_events::dsl::*;
    auth_events
        .select(event)
        .order(id)
        .load(&mut app.db.connect())
        .unwrap()
}

fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|event| *event == name).count()
}

fn sealed_secret(app: &TestApp) -> Vec<u8> {
    use authd::schema::totp_factors::dsl::*;
    totp_factors
        .select(secret)
        .first(&mut app.db.connect())
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The server's log lines, as JSON at debug (the test's HTTP client's own
/// logging, which shows cookies it stores, left out).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn install() -> Self {
        let capture = Self::default();
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,cookie_store=off,reqwest=off,hyper_util=off,hyper=off",
        );
        authd::telemetry::install(
            filter,
            authd::configuration::LogFormat::Json,
            false,
            capture.clone(),
        );
        capture
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}
