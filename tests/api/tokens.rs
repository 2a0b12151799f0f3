//! Bearer tokens: only ours, unexpired, for our issuer and audience, with
//! the one allowed algorithm; and key rotation.

use authd::configuration::SecretKey;
use authd::http::auth::token::{Claims, TokenKeys};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;

use crate::helpers::{Login, TestApp};

fn claims(login: &Login) -> Claims {
    jsonwebtoken::dangerous::insecure_decode::<Claims>(login.token())
        .unwrap()
        .claims
}

fn sign(claims: &Claims, algorithm: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_401_never_500() {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let token = login.token().to_owned();
    let keys = TokenKeys::derive(&app.settings.secrets.key, None);
    let key = keys.current();
    let ours = |claims: &Claims| sign(claims, Algorithm::HS256, Some(&key.kid), &key.encoding);
    assert_eq!(
        ours(&claims(&login)).split('.').nth(1),
        token.split('.').nth(1),
        "the test signs like the server"
    );

    let mut tampered_signature = token.clone();
    let last = tampered_signature.pop().unwrap();
    tampered_signature.push(if last == 'A' { 'B' } else { 'A' });
    let parts: Vec<&str> = token.split('.').collect();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let foreign = EncodingKey::from_secret(b"not the server's key");

    let mut variants: Vec<(String, String)> = vec![
        ("signature flipped".into(), tampered_signature),
        ("truncated".into(), token[..token.len() - 10].to_owned()),
        ("garbage".into(), "garbage".into()),
        ("empty".into(), String::new()),
        ("three dots".into(), "a.b.c".into()),
        ("alg none".into(), alg_none),
        (
            "another key".into(),
            sign(&claims(&login), Algorithm::HS256, Some(&key.kid), &foreign),
        ),
        (
            "HS512".into(),
            sign(
                &claims(&login),
                Algorithm::HS512,
                Some(&key.kid),
                &key.encoding,
            ),
        ),
        (
            "no kid".into(),
            sign(&claims(&login), Algorithm::HS256, None, &key.encoding),
        ),
        (
            "unknown kid".into(),
            sign(
                &claims(&login),
                Algorithm::HS256,
                Some("0000"),
                &key.encoding,
            ),
        ),
    ];
    let mut changed = |name: &str, edit: &dyn Fn(&mut Claims)| {
        let mut claims = claims(&login);
        edit(&mut claims);
        variants.push((name.into(), ours(&claims)));
    };
    changed("expired", &|c| c.exp = chrono::Utc::now().timestamp() - 60);
    changed("other audience", &|c| c.aud = "someone-else".into());
    changed("other issuer", &|c| c.iss = "someone-else".into());
    changed("other user", &|c| c.sub = "999".into());
    changed("non-numeric user", &|c| c.sub = "susan".into());
    changed("unknown session", &|c| c.sid = "no-such-session".into());
    for (name, bad) in &variants {
        let response = app.bearer(bad).get("/api/me").await;
        assert_eq!(response.status, 401, "{name}");
        response.problem(401);
    }
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", token.as_str()] {
        app.anonymous()
            .request(Method::GET, "/api/me")
            .header("authorization", header)
            .send()
            .await
            .problem(401);
    }
    app.bearer(&token).get("/api/me").await.assert_status(200);
}

#[tokio::test]
async fn tokens_are_never_taken_from_the_url() {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let token = login.token();
    for query in ["access_token", "token", "authorization", "jwt"] {
        app.anonymous()
            .get(&format!("/api/me?{query}={token}"))
            .await
            .problem(401);
    }
}

#[tokio::test]
async fn the_previous_key_still_works_during_a_rotation() {
    let mut app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let old_token = login.token().to_owned();
    let old_key = app.settings.secrets.key.clone();
    let old_kid = TokenKeys::derive(&old_key, None).current().kid.clone();

    app.restart_with(|settings| {
        settings.secrets.key = SecretKey::new(b"the-new-secret-key-".repeat(4)).unwrap();
        settings.secrets.previous = Some(old_key.clone());
    })
    .await;
    // The old cookie and the old token are still accepted...
    browser.get("/api/me").await.assert_status(200);
    app.bearer(&old_token)
        .get("/api/me")
        .await
        .assert_status(200);
    // ...while new ones are signed with the new key.
    let phone = app.browser();
    let fresh = phone.login("susan", false).await.login_body();
    let header = jsonwebtoken::decode_header(fresh.token()).unwrap();
    assert_ne!(header.kid.as_deref(), Some(old_kid.as_str()));
    app.bearer(fresh.token())
        .get("/api/me")
        .await
        .assert_status(200);

    // Once the old key is retired, what it signed is dead.
    app.restart_with(|settings| settings.secrets.previous = None)
        .await;
    browser.get("/api/me").await.problem(401);
    app.bearer(&old_token).get("/api/me").await.problem(401);
    app.bearer(fresh.token())
        .get("/api/me")
        .await
        .assert_status(200);
}
