//! authd as a library: examples/microblog.rs, built and run as its users
//! would run it (the environment authd reads, a database of its own),
//! serves everything authd serves, and its own index only to a logged-in
//! user, with authd's rules on every route.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Process, Server, TestDatabase, TestResponse, contract, example};

const INDEX: &str = "/api/index";

/// The index is the example's, not authd's: openapi.yaml does not describe
/// it, so its answers are checked here.
async fn index(request: crate::helpers::Request) -> TestResponse {
    request.send_beyond_authd().await
}

/// The documented greeting and posts, for `username`.
fn greeting(username: &str) -> Value {
    json!({
        "greeting": format!("Hello, {username}!"),
        "posts": [
            {"author": {"username": "john"}, "body": "Beautiful day in Portland!"},
            {"author": {"username": "susan"}, "body": "The Avengers movie was so cool!"},
        ],
    })
}

async fn start_microblog() -> (Process, TestDatabase) {
    let program = tokio::task::spawn_blocking(|| example("microblog"))
        .await
        .unwrap();
    let db = tokio::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    let process = Process::start_program(&program, &db, &[("BCRYPT_COST", "4")]).await;
    (process, db)
}

#[tokio::test]
async fn the_microblog_index_is_for_logged_in_users_only() {
    let (process, _db) = start_microblog().await;
    let server: Server = process.server();
    server.anonymous().get("/readyz").await.assert_status(200);

    let refused = index(server.anonymous().request(Method::GET, INDEX)).await;
    let problem = refused.problem(401);
    assert!(
        contract::validator("/components/schemas/UnauthorizedProblem").is_valid(&problem),
        "{problem}"
    );
    assert_eq!(problem["type"], "urn:authd:problem:unauthenticated");
    assert_eq!(problem["login_url"], "/api/login?next=%2Fapi%2Findex");
    assert!(
        refused
            .header("www-authenticate")
            .is_some_and(|value| value.starts_with("Bearer"))
    );
    assert_eq!(refused.header("cache-control"), Some("no-store"));

    // As a client follows login_url: the login echoes `next`, and the
    // index then greets the user, by cookie and by bearer token.
    server.user("susan").await;
    let browser = server.browser();
    let login = browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": PASSWORD, "next": INDEX}),
        )
        .await;
    login.assert_status(200);
    assert_eq!(login.json()["next"], INDEX);
    let token = login.login_body().token().to_owned();
    for actor in [browser.clone(), server.bearer(&token)] {
        let greeted = index(actor.request(Method::GET, INDEX)).await;
        greeted.assert_status(200);
        assert_eq!(greeted.json(), greeting("susan"));
        assert_eq!(greeted.header("cache-control"), Some("no-store"));
    }

    // The app's routes keep HTTP's order and authd's rules: a wrong method
    // is 405 before any 401, a foreign page's write is refused before
    // anything runs, and authd's own routes want their CSRF token.
    let wrong = index(server.anonymous().request(Method::POST, INDEX)).await;
    wrong.problem(405);
    assert!(
        wrong
            .header("allow")
            .is_some_and(|allow| allow.contains("GET"))
    );
    let foreign = index(
        browser
            .request(Method::POST, INDEX)
            .csrf()
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(
        foreign.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    let without_csrf = browser.request(Method::POST, "/api/logout").send().await;
    assert_eq!(
        without_csrf.problem(403)["type"],
        "urn:authd:problem:csrf-failed"
    );
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    let after = index(browser.request(Method::GET, INDEX)).await;
    assert_eq!(
        after.problem(401)["login_url"],
        "/api/login?next=%2Fapi%2Findex"
    );
}
