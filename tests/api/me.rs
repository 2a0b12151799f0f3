use authd::auth::keys::Keys;
use authd::auth::token::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;

use crate::helpers::TestApp;

#[tokio::test]
async fn me_returns_the_user_by_cookie_and_by_token() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let by_cookie = app.get("/api/me").await;
    by_cookie.assert_status(200);
    assert_eq!(by_cookie.json()["username"], "susan");
    assert_eq!(by_cookie.header("cache-control"), Some("no-store"));
    let by_token = app
        .me_with_token(login["access_token"].as_str().unwrap())
        .await;
    assert_eq!(by_token.json(), by_cookie.json());
}

#[tokio::test]
async fn anonymous_requests_get_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/me").await;
    response.problem(401);
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

fn claims(login: &serde_json::Value) -> Claims {
    let token = login["access_token"].as_str().unwrap();
    jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
        .unwrap()
        .claims
}

#[tokio::test]
async fn bad_tokens_are_401_never_500() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let keys = Keys::derive(&app.settings.secret_key);

    let mut tampered_signature = token.clone();
    let last = tampered_signature.pop().unwrap();
    tampered_signature.push(if last == 'A' { 'B' } else { 'A' });

    let mut other_user = claims(&login);
    other_user.sub = "999".into();
    let forged_sub = encode(
        &Header::new(Algorithm::HS256),
        &other_user,
        &keys.token_encoding,
    )
    .unwrap();

    let mut expired = claims(&login);
    expired.exp = chrono::Utc::now().timestamp() - 3600;
    let expired = encode(
        &Header::new(Algorithm::HS256),
        &expired,
        &keys.token_encoding,
    )
    .unwrap();

    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims(&login),
        &EncodingKey::from_secret(b"not the server's key"),
    )
    .unwrap();
    let other_alg = encode(
        &Header::new(Algorithm::HS512),
        &claims(&login),
        &EncodingKey::from_secret(b"not the server's key"),
    )
    .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);

    for bad in [
        tampered_signature.as_str(),
        &token[..token.len() - 10],
        "garbage",
        "",
        "a.b.c",
        &forged_sub,
        &expired,
        &wrong_key,
        &other_alg,
        &alg_none,
    ] {
        app.me_with_token(bad).await.problem(401);
    }
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", token.as_str()] {
        app.bare(Method::GET, "/api/me", None, &[("authorization", header)])
            .await
            .problem(401);
    }
    app.me_with_token(&token).await.assert_status(200);
}

#[tokio::test]
async fn bad_cookies_are_401_never_500() {
    let app = TestApp::spawn().await;
    app.logged_in("susan").await;
    let cookie = app.cookie("authd_session").unwrap();
    let mut flipped = cookie.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.as_str(),
        &cookie[..cookie.len() / 2],
        "garbage",
        "",
        "%%%",
        "{\"actix_identity.user_id\":\"\\\"x\\\"\"}",
    ] {
        let header = format!("authd_session={bad}");
        app.bare(Method::GET, "/api/me", None, &[("cookie", &header)])
            .await
            .problem(401);
    }
}

#[tokio::test]
async fn an_inactive_user_is_logged_out_everywhere() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    app.db.execute("UPDATE users SET is_active = false");
    app.get("/api/me").await.problem(401);
    app.me_with_token(login["access_token"].as_str().unwrap())
        .await
        .problem(401);
}

#[tokio::test]
async fn options_requests_pass_the_login_check() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::OPTIONS, "/api/me", None, &[]).await;
    assert_ne!(response.status, 401, "preflights carry no credentials");
}
