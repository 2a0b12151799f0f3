//! Passkeys (WebAuthn): adding them to an account, naming and removing
//! them, logging in with one alone, and answering a password login's second
//! step with one.
//!
//! The authenticator is webauthn-authenticator-rs's software passkey, an
//! implementation independent of the server's, driven through the same
//! checks a browser makes (`WebauthnAuthenticator`) from the page at
//! [`ORIGIN`], which the test settings allow (`PUBLIC_APP_URL`'s default).
//! Where a test plays a client that skips those checks (an assertion for
//! another relying party), it calls the authenticator directly.

use diesel::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::prelude::{Url, WebauthnAuthenticator};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::helpers::{Actor, PASSWORD, TestApp, TestResponse};

mod login;
mod manage;
mod second_factor;

/// The page that runs the ceremonies: `PUBLIC_APP_URL`'s default origin,
/// and so the one the server allows.
pub(crate) const ORIGIN: &str = "http://localhost:3000";
/// A page under the RP ID that is not an allowed origin.
const SIBLING: &str = "https://evil.localhost:3000";

const PASSKEY_FAILED: &str = "urn:authd:problem:passkey-failed";

/// A software passkey that keeps, beside each credential it made, the user
/// handle the registration gave it: what a discoverable credential returns
/// with its assertions. (The software key keeps no resident credentials and
/// returns no handle: [`Device::sign`] stands in for both. The handle is not
/// signed, so setting it afterwards is what an authenticator's is.)
pub(crate) struct Device {
    key: SoftPasskey,
    made: Vec<Made>,
}

struct Made {
    id: Vec<u8>,
    user_handle: Vec<u8>,
}

impl Device {
    pub(crate) fn new() -> Self {
        Self {
            // `true`: it sets the user-verified flag, as a key with a PIN or
            // biometrics does.
            key: SoftPasskey::new(true),
            made: Vec::new(),
        }
    }

    /// `navigator.credentials.create()` at [`ORIGIN`] for a start's answer:
    /// the credential as the page sends it back.
    pub(crate) fn create(&mut self, started: &Value) -> Value {
        self.create_at(ORIGIN, started)
    }

    /// `navigator.credentials.create()` on the page at `origin`.
    pub(crate) fn create_at(&mut self, origin: &str, started: &Value) -> Value {
        let options = creation_options(started);
        let handle = options.public_key.user.id.clone();
        let credential = self
            .key
            .do_registration(Url::parse(origin).unwrap(), options)
            .expect("the authenticator makes a credential");
        self.keep(&credential, handle)
    }

    /// The authenticator asked directly, as by a client that checks nothing
    /// (say, an RP ID the page is not under).
    fn create_unchecked(&mut self, origin: &str, options: CreationChallengeResponse) -> Value {
        let handle = options.public_key.user.id.clone();
        let credential = AuthenticatorBackend::perform_register(
            &mut self.key,
            Url::parse(origin).unwrap(),
            options.public_key,
            60_000,
        )
        .expect("the authenticator makes a credential");
        self.keep(&credential, handle)
    }

    fn keep(&mut self, credential: &RegisterPublicKeyCredential, user_handle: Vec<u8>) -> Value {
        self.made.push(Made {
            id: credential.raw_id.clone(),
            user_handle,
        });
        serde_json::to_value(credential).unwrap()
    }

    /// `navigator.credentials.get()` at [`ORIGIN`] for a start's answer.
    pub(crate) fn get(&mut self, started: &Value) -> Value {
        self.get_at(ORIGIN, started)
    }

    /// `navigator.credentials.get()` on the page at `origin`.
    pub(crate) fn get_at(&mut self, origin: &str, started: &Value) -> Value {
        as_json(&self.sign(origin, request_options(started), true))
    }

    /// An assertion for `options` from the page at `origin`, through the
    /// browser's checks when `checked`. Options that name no credential
    /// (a login that starts without a username) are answered with one this
    /// key holds, as a discoverable credential is; the user handle kept
    /// with the credential used goes with it.
    fn sign(
        &mut self,
        origin: &str,
        mut options: RequestChallengeResponse,
        checked: bool,
    ) -> PublicKeyCredential {
        if options.public_key.allow_credentials.is_empty() {
            options.public_key.allow_credentials = self.allow_list();
        }
        let origin = Url::parse(origin).unwrap();
        let mut credential = if checked {
            self.key.do_authentication(origin, options)
        } else {
            AuthenticatorBackend::perform_auth(&mut self.key, origin, options.public_key, 60_000)
        }
        .expect("the authenticator signs");
        credential.response.user_handle = self
            .made
            .iter()
            .find(|made| made.id == credential.raw_id)
            .map(|made| made.user_handle.clone());
        credential
    }

    /// The credentials this key holds, as `allowCredentials` names them.
    fn allow_list(&self) -> Vec<AllowCredentials> {
        self.made
            .iter()
            .map(|made| AllowCredentials {
                type_: "public-key".into(),
                id: made.id.clone(),
                transports: None,
            })
            .collect()
    }

    /// The user handle of the last credential made.
    fn user_handle(&self) -> Vec<u8> {
        self.made.last().expect("a credential").user_handle.clone()
    }

    /// The last credential's id, as the options' JSON spells it.
    fn credential_id(&self) -> String {
        b64(&self.made.last().expect("a credential").id)
    }
}

/// Creation options from a start's answer, as a page hands them to the
/// browser.
fn creation_options(started: &Value) -> CreationChallengeResponse {
    serde_json::from_value(json!({"publicKey": started["publicKey"]}))
        .unwrap_or_else(|error| panic!("creation options ({error}): {started}"))
}

/// Request options from a start's answer.
fn request_options(started: &Value) -> RequestChallengeResponse {
    serde_json::from_value(json!({"publicKey": started["publicKey"]}))
        .unwrap_or_else(|error| panic!("request options ({error}): {started}"))
}

fn as_json(credential: &PublicKeyCredential) -> Value {
    serde_json::to_value(credential).unwrap()
}

/// Base64url without padding: how WebAuthn's JSON carries bytes.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// Registration.

async fn start_registration(user: &Actor, body: &Value) -> TestResponse {
    user.post("/api/passkeys/register/start", body).await
}

/// A started registration, confirmed with [`PASSWORD`]: its answer.
async fn started_registration(user: &Actor) -> Value {
    let response = start_registration(user, &json!({"current_password": PASSWORD})).await;
    response.assert_status(200);
    response.json()
}

async fn finish_registration(
    user: &Actor,
    started: &Value,
    credential: &Value,
    name: Option<&str>,
) -> TestResponse {
    let mut body = json!({"challenge_id": started["challenge_id"], "credential": credential});
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    user.post("/api/passkeys/register/finish", &body).await
}

/// Adds a passkey made by `device` to the logged-in `user`: the new
/// passkey as the server answered it.
pub(crate) async fn add_passkey(user: &Actor, device: &mut Device, name: Option<&str>) -> Value {
    let started = started_registration(user).await;
    let credential = device.create(&started);
    let response = finish_registration(user, &started, &credential, name).await;
    response.assert_status(201);
    response.json()
}

/// Registers `username`, logs it in from an app and adds a passkey: the
/// app, the device that holds the passkey, and the passkey.
pub(crate) async fn passkey_user(app: &TestApp, username: &str) -> (Actor, Device, Value) {
    let (user, _) = app.logged_in_app(username).await;
    let mut device = Device::new();
    let passkey = add_passkey(&user, &mut device, None).await;
    (user, device, passkey)
}

// Logging in.

async fn start_login(client: &Actor, body: &Value) -> TestResponse {
    client.post("/api/passkeys/login/start", body).await
}

/// A started passwordless login: its answer.
async fn login_options(client: &Actor) -> Value {
    let response = start_login(client, &json!({})).await;
    response.assert_status(200);
    response.json()
}

async fn finish_login(client: &Actor, started: &Value, credential: &Value) -> TestResponse {
    let body = json!({"challenge_id": started["challenge_id"], "credential": credential});
    client.post("/api/passkeys/login/finish", &body).await
}

/// A whole passwordless login with `device`, from `client`.
pub(crate) async fn passkey_login(client: &Actor, device: &mut Device) -> TestResponse {
    let started = login_options(client).await;
    let credential = device.get(&started);
    finish_login(client, &started, &credential).await
}

/// Asserts the `passkey-failed` problem.
#[track_caller]
fn assert_passkey_failed(response: &TestResponse) {
    let problem = response.problem(401);
    assert_eq!(problem["type"], PASSKEY_FAILED, "{problem}");
}

// Reading.

async fn me(user: &Actor) -> Value {
    let response = user.get("/api/me").await;
    response.assert_status(200);
    response.json()
}

async fn list(user: &Actor) -> Vec<Value> {
    let response = user.get("/api/passkeys").await;
    response.assert_status(200);
    serde_json::from_value(response.json()).unwrap()
}

async fn send(user: &Actor, method: Method, path: &str, body: &Value) -> TestResponse {
    user.request(method, path).json(body).send().await
}

fn user_id(app: &TestApp, name: &str) -> i64 {
    use authd::schema::users::dsl::*;
    users
        .filter(username.eq(name))
        .select(id)
        .first(&mut app.db.connect())
        .unwrap()
}

/// The audited passkey refusals, oldest first: whose, and why.
fn refusals(app: &TestApp) -> Vec<(Option<i64>, Option<String>)> {
    use authd::schema::auth_events::dsl::*;
    auth_events
        .filter(event.eq("passkey_failure"))
        .order(id)
        .select((user_id, reason))
        .load(&mut app.db.connect())
        .unwrap()
}

/// The reasons of the audited passkey refusals, oldest first.
fn refusal_reasons(app: &TestApp) -> Vec<String> {
    refusals(app)
        .into_iter()
        .map(|(_, reason)| reason.unwrap_or_default())
        .collect()
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
