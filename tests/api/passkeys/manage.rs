//! Adding a passkey to an account, listing, renaming and removing them;
//! what the owner is told; an operator's reset; passkeys turned off.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Device, SIBLING, add_passkey, assert_passkey_failed, count, creation_options, events,
    finish_registration, list, me, passkey_login, passkey_user, refusal_reasons, refusals, send,
    start_registration, started_registration, user_id,
};
use crate::cli::{assert_code, authd};
use crate::helpers::mail_sink::MailSink;
use crate::helpers::{PASSWORD, TestApp};
use crate::mfa::mfa_user;
use crate::recovery::{delivered, mailing};

const ADDED: &str = "A passkey was added to your account";
const REMOVED: &str = "A passkey was removed from your account";

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn registration_is_confirmed_by_the_password_and_serves_creation_options() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;

    let missing = start_registration(&susan, &json!({})).await.problem(422);
    assert!(
        missing["errors"]["current_password"].is_array(),
        "{missing}"
    );
    let wrong = start_registration(&susan, &json!({"current_password": "wrong-password-1"}))
        .await
        .problem(403);
    assert_eq!(wrong["type"], "urn:authd:problem:wrong-password");

    let started = started_registration(&susan).await;
    let challenge_id = started["challenge_id"].as_str().unwrap();
    assert!(challenge_id.len() >= 32, "{challenge_id}");
    let options = &started["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["rp"]["name"], "authd");
    assert_eq!(options["user"]["name"], "susan");
    assert!(
        options["challenge"].as_str().unwrap().len() >= 22,
        "{options}"
    );
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "preferred", "{selection}");
    assert_eq!(selection["requireResidentKey"], false, "{selection}");
    assert_eq!(selection["userVerification"], "required", "{selection}");
    let excluded = options["excludeCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(excluded.is_empty(), "nothing to exclude yet: {options}");

    let mut laptop = Device::new();
    let credential = laptop.create(&started);
    let response = finish_registration(&susan, &started, &credential, None).await;
    response.assert_status(201);
    let first = response.json();
    assert_eq!(keys(&first), ["created_at", "id", "last_used_at", "name"]);
    assert_eq!(first["name"], "Passkey", "the default name");
    assert!(first["created_at"].is_string());
    assert_eq!(first["last_used_at"], Value::Null);
    let id = first["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let body = response.json().to_string();
    assert!(
        !body.contains(&laptop.credential_id()),
        "no key material: {body}"
    );
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 1);

    // The next registration excludes the passkey the account has.
    app.advance(Duration::from_secs(1));
    let started = started_registration(&susan).await;
    let excluded: Vec<&str> = started["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .iter()
        .map(|descriptor| descriptor["id"].as_str().unwrap())
        .collect();
    assert_eq!(excluded, [laptop.credential_id()]);
    let mut phone = Device::new();
    let credential = phone.create(&started);
    let second = finish_registration(&susan, &started, &credential, Some("  Phone  ")).await;
    second.assert_status(201);
    assert_eq!(second.json()["name"], "Phone", "spaces at the ends dropped");

    let listed = list(&susan).await;
    let names: Vec<&str> = listed
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Passkey", "Phone"], "oldest first");
    assert_eq!(listed[0], first);
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 2);
    assert_eq!(count(&events(&app), "passkey_added"), 2);
}

/// A name is checked before the ceremony is: a refused name leaves the
/// challenge good for a name that passes.
#[tokio::test]
async fn names_and_missing_fields_are_422_and_leave_the_challenge_good() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let started = started_registration(&susan).await;
    let mut device = Device::new();
    let credential = device.create(&started);
    for bad in ["", "   ", &"x".repeat(65), "a\u{200b}b", "tab\there"] {
        let problem = finish_registration(&susan, &started, &credential, Some(bad))
            .await
            .problem(422);
        assert!(problem["errors"]["name"].is_array(), "{bad:?}: {problem}");
    }
    let body = json!({"challenge_id": started["challenge_id"]});
    let problem = susan
        .post("/api/passkeys/register/finish", &body)
        .await
        .problem(422);
    assert!(problem["errors"]["credential"].is_array(), "{problem}");
    let body = json!({"credential": credential});
    let problem = susan
        .post("/api/passkeys/register/finish", &body)
        .await
        .problem(422);
    assert!(problem["errors"]["challenge_id"].is_array(), "{problem}");
    assert!(list(&susan).await.is_empty());

    let longest = "é".repeat(64);
    let added = finish_registration(&susan, &started, &credential, Some(&longest)).await;
    added.assert_status(201);
    assert_eq!(added.json()["name"], longest.as_str());
}

#[tokio::test]
async fn a_browser_registers_with_its_csrf_token() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    let body = json!({"current_password": PASSWORD});
    browser
        .post("/api/passkeys/register/start", &body)
        .await
        .problem(403);
    let started = browser
        .request(Method::POST, "/api/passkeys/register/start")
        .json(&body)
        .csrf()
        .send()
        .await;
    started.assert_status(200);
    let started = started.json();
    let credential = Device::new().create(&started);
    let body = json!({"challenge_id": started["challenge_id"], "credential": credential});
    browser
        .request(Method::POST, "/api/passkeys/register/finish")
        .json(&body)
        .csrf()
        .send()
        .await
        .assert_status(201);
    assert_eq!(list(&browser).await.len(), 1);
}

/// A registration challenge is its account's and session's, once, for
/// five minutes.
#[tokio::test]
async fn a_registration_challenge_works_once_for_its_session_within_the_ttl() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let (other_session, _) = app.app_login("susan", false).await;
    let (bob, _) = app.logged_in_app("bob").await;
    let mut device = Device::new();

    let started = started_registration(&susan).await;
    let credential = device.create(&started);
    assert_passkey_failed(&finish_registration(&bob, &started, &credential, None).await);

    let started = started_registration(&susan).await;
    let credential = device.create(&started);
    assert_passkey_failed(&finish_registration(&other_session, &started, &credential, None).await);

    let started = started_registration(&susan).await;
    let credential = device.create(&started);
    finish_registration(&susan, &started, &credential, None)
        .await
        .assert_status(201);
    // Finished: not again.
    assert_passkey_failed(&finish_registration(&susan, &started, &credential, None).await);

    let started = started_registration(&susan).await;
    app.advance(Duration::from_secs(5 * 60 + 1));
    let credential = device.create(&started);
    assert_passkey_failed(&finish_registration(&susan, &started, &credential, None).await);

    let started = started_registration(&susan).await;
    app.advance(Duration::from_secs(4 * 60 + 50));
    let credential = device.create(&started);
    finish_registration(&susan, &started, &credential, None)
        .await
        .assert_status(201);

    assert_eq!(list(&susan).await.len(), 2);
    assert!(list(&bob).await.is_empty());
    let (susan_id, bob_id) = (user_id(&app, "susan"), user_id(&app, "bob"));
    let challenge = Some("challenge".to_owned());
    assert_eq!(
        refusals(&app),
        [
            (Some(bob_id), challenge.clone()),
            (Some(susan_id), challenge.clone()),
            (Some(susan_id), challenge.clone()),
            (Some(susan_id), challenge),
        ]
    );
}

#[tokio::test]
async fn a_credential_for_another_origin_or_relying_party_is_not_added() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    let mut device = Device::new();

    let started = started_registration(&susan).await;
    let credential = device.create_at(SIBLING, &started);
    assert_passkey_failed(&finish_registration(&susan, &started, &credential, None).await);

    // Made for example.com by a client that did not check the page is
    // under it.
    let started = started_registration(&susan).await;
    let mut options = creation_options(&started);
    options.public_key.rp.id = "example.com".into();
    let credential = device.create_unchecked(super::ORIGIN, options);
    assert_passkey_failed(&finish_registration(&susan, &started, &credential, None).await);

    assert!(list(&susan).await.is_empty());
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 0);
    assert_eq!(refusal_reasons(&app), ["origin", "rp_id"]);
    assert_eq!(count(&events(&app), "passkey_added"), 0);
}

#[tokio::test]
async fn the_owner_lists_renames_and_removes_only_their_own() {
    let app = TestApp::spawn().await;
    let (susan, mut device, passkey) = passkey_user(&app, "susan").await;
    let (bob, _, bobs) = passkey_user(&app, "bob").await;
    let (susan_key, bob_key) = (
        passkey["id"].as_str().unwrap().to_owned(),
        bobs["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(list(&susan).await, std::slice::from_ref(&passkey));
    assert_eq!(list(&bob).await, std::slice::from_ref(&bobs));

    // Renaming.
    let path = format!("/api/passkeys/{susan_key}");
    let renamed = send(
        &susan,
        Method::PATCH,
        &path,
        &json!({"name": " Work laptop "}),
    )
    .await;
    renamed.assert_status(200);
    let renamed = renamed.json();
    assert_eq!(renamed["name"], "Work laptop", "a space inside is kept");
    assert_eq!(renamed["id"], passkey["id"]);
    assert_eq!(renamed["created_at"], passkey["created_at"]);
    assert_eq!(list(&susan).await[0]["name"], "Work laptop");
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
    ] {
        let problem = send(&susan, Method::PATCH, &path, &bad).await.problem(422);
        assert!(problem["errors"]["name"].is_array(), "{bad}: {problem}");
    }
    let bobs_path = format!("/api/passkeys/{bob_key}");
    let problem = send(&susan, Method::PATCH, &bobs_path, &json!({"name": "Mine"}))
        .await
        .problem(404);
    assert_eq!(problem["type"], "urn:authd:problem:not-found", "{problem}");
    for malformed in ["nope", "ABCDEF0123456789ABCDEF0123456789", "0"] {
        let path = format!("/api/passkeys/{malformed}");
        send(&susan, Method::PATCH, &path, &json!({"name": "x"}))
            .await
            .problem(404);
        send(
            &susan,
            Method::DELETE,
            &path,
            &json!({"current_password": PASSWORD}),
        )
        .await
        .problem(404);
    }
    assert_eq!(list(&bob).await, std::slice::from_ref(&bobs));

    // Removing.
    let problem = send(
        &susan,
        Method::DELETE,
        &bobs_path,
        &json!({"current_password": PASSWORD}),
    )
    .await
    .problem(404);
    assert_eq!(problem["type"], "urn:authd:problem:not-found");
    assert_eq!(list(&bob).await.len(), 1);
    let wrong = json!({"current_password": "wrong-password-1"});
    let problem = send(&susan, Method::DELETE, &path, &wrong)
        .await
        .problem(403);
    assert_eq!(problem["type"], "urn:authd:problem:wrong-password");
    let problem = send(&susan, Method::DELETE, &path, &json!({}))
        .await
        .problem(422);
    assert!(
        problem["errors"]["current_password"].is_array(),
        "{problem}"
    );
    assert_eq!(list(&susan).await.len(), 1);
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 1);

    let right = json!({"current_password": PASSWORD});
    let removed = send(&susan, Method::DELETE, &path, &right).await;
    removed.assert_status(204);
    assert!(removed.body.is_empty());
    assert!(list(&susan).await.is_empty());
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 0);
    send(&susan, Method::DELETE, &path, &right)
        .await
        .problem(404);
    assert_eq!(count(&events(&app), "passkey_removed"), 1);

    // A removed passkey logs nobody in; the password alone does again.
    assert_passkey_failed(&passkey_login(&app.anonymous(), &mut device).await);
    assert_eq!(refusal_reasons(&app), ["unknown_credential"]);
    app.anonymous()
        .login("susan", false)
        .await
        .assert_status(200);
    // Bob's is untouched.
    assert_eq!(list(&bob).await, [bobs]);
}

#[tokio::test]
async fn an_account_with_totp_confirms_with_a_code_too() {
    let app = TestApp::spawn().await;
    let (susan, phone, _) = mfa_user(&app, "susan").await;
    let problem = start_registration(&susan, &json!({"current_password": PASSWORD}))
        .await
        .problem(422);
    assert!(problem["errors"]["code"].is_array(), "{problem}");
    let right = phone.next_code(&app);
    let last = right.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &right[..5], (last + 1) % 10);
    let body = json!({"current_password": PASSWORD, "code": wrong});
    let problem = start_registration(&susan, &body).await.problem(403);
    assert_eq!(problem["type"], "urn:authd:problem:wrong-code", "{problem}");
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    let started = start_registration(&susan, &body).await;
    started.assert_status(200);
    let started = started.json();
    let mut device = Device::new();
    let credential = device.create(&started);
    let added = finish_registration(&susan, &started, &credential, None).await;
    added.assert_status(201);
    let id = added.json()["id"].as_str().unwrap().to_owned();

    let path = format!("/api/passkeys/{id}");
    let problem = send(
        &susan,
        Method::DELETE,
        &path,
        &json!({"current_password": PASSWORD}),
    )
    .await
    .problem(422);
    assert!(problem["errors"]["code"].is_array(), "{problem}");
    assert_eq!(list(&susan).await.len(), 1);
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    send(&susan, Method::DELETE, &path, &body)
        .await
        .assert_status(204);
    assert!(list(&susan).await.is_empty());
}

#[tokio::test]
async fn adding_and_removing_a_passkey_mails_the_owner() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(mailing(&sink)).await;
    let (susan, _) = app.logged_in_app("susan").await;
    app.deliver_pending_mail().await;
    let added = add_passkey(&susan, &mut Device::new(), Some("Laptop")).await;
    assert_eq!(queued(&app), ["passkey_added"]);
    let mail = delivered(&app, &sink, "susan@example.com", ADDED, 1).await;
    assert!(mail[0].body.contains("Hello susan,"), "{}", mail[0].body);

    let path = format!("/api/passkeys/{}", added["id"].as_str().unwrap());
    send(
        &susan,
        Method::DELETE,
        &path,
        &json!({"current_password": PASSWORD}),
    )
    .await
    .assert_status(204);
    assert_eq!(queued(&app), ["passkey_removed"]);
    delivered(&app, &sink, "susan@example.com", REMOVED, 1).await;
    // Renaming is no change to how the account logs in: no mail.
    let renamed = add_passkey(&susan, &mut Device::new(), None).await;
    app.deliver_pending_mail().await;
    let path = format!("/api/passkeys/{}", renamed["id"].as_str().unwrap());
    send(&susan, Method::PATCH, &path, &json!({"name": "Other"}))
        .await
        .assert_status(200);
    assert!(queued(&app).is_empty(), "{:?}", queued(&app));
}

/// The kinds of mail in the outbox, oldest first.
fn queued(app: &TestApp) -> Vec<String> {
    use authd::schema::mail_outbox::dsl::*;
    mail_outbox
        .select(kind)
        .order(id)
        .load(&mut app.db.connect())
        .unwrap()
}

#[tokio::test]
async fn an_operators_mfa_reset_removes_the_passkeys() {
    let app = TestApp::spawn().await;
    let (susan, mut device, _) = passkey_user(&app, "susan").await;
    add_passkey(&susan, &mut Device::new(), None).await;
    let (bob, _, _) = passkey_user(&app, "bob").await;
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 2);

    let run = authd(&app.db.url(), &["user", "mfa-reset", "susan"], "", &[]).await;
    assert_code(&run, 0);
    assert!(!run.stdout.contains("no second factor"), "{}", run.stdout);
    // Every session of hers has ended (this instance hears of it from the
    // database).
    susan.refused_within_a_second().await;
    let login = app.anonymous().login("susan", false).await;
    login.assert_status(200);
    let susan = app.bearer(login.login_body().token());
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 0);
    assert!(list(&susan).await.is_empty());
    assert_passkey_failed(&passkey_login(&app.anonymous(), &mut device).await);
    assert_eq!(count(&events(&app), "mfa_reset"), 1);
    // Another account's are not touched.
    assert_eq!(me(&bob).await["mfa"]["passkeys"], 1);
}

/// With an IP address for `PUBLIC_APP_URL` and no `WEBAUTHN_RP_ID`, there
/// is no relying party: the ceremonies are not found.
#[tokio::test]
async fn without_a_relying_party_the_ceremonies_are_off() {
    let app = TestApp::spawn_with(|settings| {
        settings.mail.app_url = "http://127.0.0.1:3000".into();
        settings.webauthn.rp_id = None;
    })
    .await;
    let (susan, _) = app.logged_in_app("susan").await;
    let client = app.anonymous();
    let assertion = json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA"},
        "type": "public-key",
    });
    let attestation = json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"},
        "type": "public-key",
    });
    let answers = [
        start_registration(&susan, &json!({"current_password": PASSWORD})).await,
        susan
            .post(
                "/api/passkeys/register/finish",
                &json!({"challenge_id": "x".repeat(43), "credential": attestation}),
            )
            .await,
        client.post("/api/passkeys/login/start", &json!({})).await,
        client
            .post(
                "/api/passkeys/login/finish",
                &json!({"challenge_id": "x".repeat(43), "credential": assertion}),
            )
            .await,
    ];
    for answer in answers {
        let problem = answer.problem(404);
        assert_eq!(
            problem["type"], "urn:authd:problem:passkeys-disabled",
            "{problem}"
        );
    }
    // The password login is as before.
    let login = client.login("susan", false).await;
    login.assert_status(200);
    assert_eq!(me(&susan).await["mfa"]["passkeys"], 0);
}
