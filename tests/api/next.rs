//! The `next` redirect target a login echoes: only same-site paths, from
//! the body or the query.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

const UNSAFE: &[&str] = &[
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https://evil.com",
    "https:evil.com",
    "/\t/evil.com",
    "javascript:alert(1)",
    "evil.com",
    "",
];
const SAFE: &[&str] = &["/", "/index", "/posts?page=2#top"];

async fn next_after_login(app: &TestApp, body_next: Option<&str>, query: &str) -> String {
    let browser = app.browser();
    let mut body = json!({"username": "susan", "password": PASSWORD});
    if let Some(next) = body_next {
        body["next"] = json!(next);
    }
    let response = browser
        .request(reqwest::Method::POST, &format!("/api/login{query}"))
        .json(&body)
        .send()
        .await;
    response.assert_status(200);
    response.json()["next"].as_str().unwrap().to_owned()
}

fn query(next: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("?next={encoded}")
}

/// `candidate` becomes `/`, from the body and from the query.
async fn assert_refused(app: &TestApp, candidate: &str) {
    assert_eq!(
        next_after_login(app, Some(candidate), "").await,
        "/",
        "body {candidate:?}"
    );
    assert_eq!(
        next_after_login(app, None, &query(candidate)).await,
        "/",
        "query {candidate:?}"
    );
}

#[tokio::test]
async fn next_is_echoed_only_when_it_is_a_same_site_path() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    for candidate in UNSAFE {
        assert_refused(&app, candidate).await;
    }
    for candidate in SAFE {
        assert_eq!(
            next_after_login(&app, Some(candidate), "").await,
            *candidate
        );
        assert_eq!(
            next_after_login(&app, None, &query(candidate)).await,
            *candidate
        );
    }
}

#[tokio::test]
async fn the_body_wins_over_the_query_and_absence_means_root() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    assert_eq!(
        next_after_login(&app, Some("/from-body"), "?next=/from-query").await,
        "/from-body"
    );
    assert_eq!(next_after_login(&app, None, "").await, "/");
}

/// Encoded separators and dot segments, which a browser or a client-side
/// router may decode or resolve into another path, become `/`, from the
/// body and from the query, encoded once or as they stand.
#[tokio::test]
async fn encoded_slashes_and_dot_segments_become_root() {
    let app = TestApp::spawn().await;
    app.user("susan").await;
    for candidate in [
        "/%2F%2Fevil.com",
        "/%2f%2fevil.com",
        "/%5C%5Cevil.com",
        "/a%5cb",
        "/./admin",
        "/a/../admin",
        "/a/..",
        "/%2e%2e/admin",
        "/%2E/admin",
    ] {
        assert_refused(&app, candidate).await;
        // Unencoded in the URL, the server's decoding yields a `/`, `\` or
        // `.`, which is refused just the same.
        assert_eq!(
            next_after_login(&app, None, &format!("?next={candidate}")).await,
            "/",
            "raw query {candidate:?}"
        );
    }
}
