//! Forward auth as operators deploy it: a real nginx running
//! deploy/nginx/authd.conf, authd's API and a protected upstream on one
//! origin. Only requests authd passes reach the upstream, with the identity
//! authd answered and nothing a client made up; what authd refuses is
//! refused at nginx, in authd's problem format.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::nginx::{Nginx, Received, Upstream};
use crate::helpers::{
    Actor, PASSWORD, Request, Server, TestApp, TestResponse, contract, free_port,
};

const IDENTITY: [&str; 5] = [
    "x-authd-user-id",
    "x-authd-username",
    "x-authd-session",
    "x-authd-email-verified",
    "x-authd-email",
];

/// authd and the upstream behind one nginx. Actors of `front` talk to
/// nginx; `authd` is authd itself.
struct Site {
    nginx: Nginx,
    upstream: Upstream,
    front: Server,
    authd: TestApp,
}

/// Set up as the example's comment says: authd's `PUBLIC_URL` is the origin
/// browsers use (nginx's), its `TRUSTED_PROXIES` nginx's address.
async fn site() -> Site {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let authd = TestApp::spawn_with(|s| {
        s.http.public_origin = Some(origin);
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let upstream = Upstream::start();
    let address = authd.address();
    let authd_host = address.trim_start_matches("http://");
    let nginx = Nginx::start(port, authd_host, &upstream.address).await;
    Site {
        front: nginx.server(),
        nginx,
        upstream,
        authd,
    }
}

impl Site {
    /// How many requests have reached the upstream.
    fn reached(&self) -> usize {
        self.upstream.received().len()
    }

    /// The last request that reached the upstream.
    fn last(&self) -> Received {
        self.upstream
            .received()
            .pop()
            .expect("a request reached the upstream")
    }

    /// Asserts that `request` reached the upstream (200 from it) and returns
    /// what arrived there.
    async fn passes(&self, request: Request) -> Received {
        let before = self.reached();
        let response = request.send_beyond_authd().await;
        assert_eq!(
            response.status,
            200,
            "{}; nginx: {}",
            String::from_utf8_lossy(&response.body),
            self.nginx.error_log()
        );
        assert_eq!(self.reached(), before + 1);
        self.last()
    }

    /// Asserts that `request` was refused at nginx with `status` and never
    /// reached the upstream; returns the refusal.
    async fn refused(&self, request: Request, status: u16) -> TestResponse {
        let before = self.reached();
        let response = request.send_beyond_authd().await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(self.reached(), before, "the upstream was reached");
        authd_problem(&response, status);
        response
    }

    /// Polls `GET /app/` as `actor` for at most a second until nginx
    /// refuses it with 401.
    async fn shut_within_a_second(&self, actor: &Actor) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let before = self.reached();
            let response = actor
                .request(Method::GET, "/app/")
                .send_beyond_authd()
                .await;
            if response.status == 401 {
                assert_eq!(self.reached(), before);
                authd_problem(&response, 401);
                return;
            }
            assert_eq!(response.status, 200);
            assert!(
                Instant::now() < deadline,
                "still let through a second later"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that nginx's own refusal is one authd could have sent: the
/// problem document openapi.yaml describes for the status, and its
/// headers.
#[track_caller]
fn authd_problem(response: &TestResponse, status: u16) -> Value {
    let body = response.problem(status);
    let schema = match status {
        401 => "UnauthorizedProblem",
        _ => "ForbiddenProblem",
    };
    let validator = contract::validator(&format!("/components/schemas/{schema}"));
    assert!(validator.is_valid(&body), "not a {schema}: {body}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let challenges: Vec<_> = response
        .headers
        .get_all("www-authenticate")
        .iter()
        .collect();
    if status == 401 {
        assert_eq!(challenges, ["Bearer realm=\"authd\""]);
    } else {
        assert!(challenges.is_empty());
    }
    body
}

/// The `X-Authd-*` headers that reached the upstream, each exactly once.
#[track_caller]
fn identity_of(received: &Received) -> Vec<String> {
    IDENTITY
        .iter()
        .map(|name| match received.all(name).as_slice() {
            [value] => (*value).to_owned(),
            values => panic!("{name}: {values:?}"),
        })
        .collect()
}

/// What authd itself says of `actor`, asked directly.
async fn identity_from_authd(site: &Site, actor: &Actor) -> Vec<String> {
    let passed = actor
        .via(&site.authd)
        .request(Method::GET, "/api/auth/check")
        .send()
        .await;
    passed.assert_status(204);
    IDENTITY
        .iter()
        .map(|name| passed.header(name).unwrap().to_owned())
        .collect()
}

fn get(actor: &Actor, path: &str) -> Request {
    actor.request(Method::GET, path)
}

fn post(actor: &Actor, path: &str) -> Request {
    actor
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .body(r#"{"post": "Beautiful day in Portland!"}"#)
}

#[tokio::test]
async fn anonymous_requests_never_reach_the_upstream() {
    let site = site().await;
    let front = &site.front;
    for actor in [
        front.anonymous(),
        front.bearer("not-a-token"),
        front.with_session_cookie("garbage"),
    ] {
        let refused = site.refused(get(&actor, "/app/"), 401).await;
        // The problem authd's check answered, which nginx cannot pass on.
        let own = actor.get("/api/auth/check").await.problem(401);
        assert_eq!(authd_problem(&refused, 401), own);
        site.refused(post(&actor, "/app/posts"), 401).await;
        let head = actor
            .request(Method::HEAD, "/app/")
            .send_beyond_authd()
            .await;
        head.assert_status(401);
        assert_eq!(
            head.header("www-authenticate"),
            Some("Bearer realm=\"authd\"")
        );
    }
    assert!(site.upstream.received().is_empty());
}

/// A browser's cookie and an app's bearer token, each a session of its
/// own, reach the upstream with the identity authd gives them; and users
/// taking turns on nginx's kept-alive connections never get each other's.
#[tokio::test]
async fn logged_in_requests_reach_the_upstream_with_their_identity() {
    let site = site().await;
    let front = &site.front;
    let (browser, _) = front.logged_in_browser("susan").await;
    let (phone, _) = front.app_login("susan", false).await;
    let (bob, _) = front.logged_in_app("bob").await;

    let reached = site.passes(get(&browser, "/app/feed?page=2")).await;
    assert_eq!(reached.method, "GET");
    assert_eq!(reached.uri, "/app/feed?page=2");
    let susan = identity_from_authd(&site, &browser).await;
    assert_eq!(identity_of(&reached), susan);
    assert_eq!(susan[1], "susan");
    let me = browser.get("/api/me").await.json();
    assert_eq!(susan[0], me["id"].to_string());
    assert_eq!(susan[2], me["session"]["id"].as_str().unwrap());

    let by_token = identity_of(&site.passes(get(&phone, "/app/feed")).await);
    assert_eq!(by_token, identity_from_authd(&site, &phone).await);
    assert_eq!(by_token[0], susan[0]);
    assert_ne!(by_token[2], susan[2], "its own session");

    let bob_identity = identity_from_authd(&site, &bob).await;
    for _ in 0..3 {
        for (actor, expected) in [(&browser, &susan), (&bob, &bob_identity)] {
            let reached = site.passes(get(actor, "/app/feed")).await;
            assert_eq!(&identity_of(&reached), expected);
        }
    }
    let head = site.passes(browser.request(Method::HEAD, "/app/")).await;
    assert_eq!(head.method, "HEAD");
    assert_eq!(identity_of(&head), susan);
}

/// A cookie goes with any request a browser makes, a page of another site's
/// too: a cookie-carried write reaches the upstream only with the session's
/// CSRF token and from this site. A bearer token needs neither.
#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_this_origin() {
    let site = site().await;
    let front = &site.front;
    let (browser, login) = front.logged_in_browser("susan").await;
    let own = site.nginx.address.clone();

    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let refused = site
            .refused(browser.request(method.clone(), "/app/posts/1"), 403)
            .await;
        assert_eq!(refused.json()["type"], "urn:authd:problem:csrf-failed");
        site.refused(
            browser
                .request(method.clone(), "/app/posts/1")
                .header("x-csrf-token", "wrong"),
            403,
        )
        .await;
        let reached = site
            .passes(browser.request(method.clone(), "/app/posts/1").csrf())
            .await;
        assert_eq!(reached.method, method.as_str());
    }
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/page"),
    ] {
        site.refused(
            post(&browser, "/app/posts").csrf().header(header, value),
            403,
        )
        .await;
    }
    site.passes(post(&browser, "/app/posts").csrf().header("origin", &own))
        .await;
    site.passes(
        post(&browser, "/app/posts")
            .csrf()
            .header("referer", &format!("{own}/app/compose")),
    )
    .await;
    // Reads are not refused by origin: a page elsewhere may link here.
    site.passes(get(&browser, "/app/").header("origin", "https://evil.example"))
        .await;

    let app = front.bearer(login.token());
    for method in [Method::POST, Method::DELETE] {
        site.passes(app.request(method, "/app/posts/1")).await;
    }
    site.passes(post(&app, "/app/posts").header("origin", "https://evil.example"))
        .await;
}

/// The proxy is transparent to what it lets through: the body arrives byte
/// for byte, whatever its size or bytes, with its method and type.
#[tokio::test]
async fn a_request_body_reaches_the_upstream_untouched() {
    let site = site().await;
    let (browser, login) = site.front.logged_in_browser("susan").await;
    let app = site.front.bearer(login.token());
    // Every byte value, and more than nginx keeps in memory (it spills to
    // its temporary directory).
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for actor_request in [
        app.request(Method::POST, "/app/upload"),
        browser.request(Method::PUT, "/app/upload").csrf(),
    ] {
        let reached = site
            .passes(
                actor_request
                    .header("content-type", "application/octet-stream")
                    .body(bytes.clone()),
            )
            .await;
        assert!(reached.body == bytes, "the body changed on the way");
        assert_eq!(reached.all("content-type"), ["application/octet-stream"]);
        assert_eq!(reached.all("content-length"), [bytes.len().to_string()]);
    }
    let json = json!({"body": "naïve café ☕", "tags": ["a", "b"]});
    let reached = site
        .passes(app.request(Method::POST, "/app/posts").json(&json))
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&reached.body).unwrap(),
        json
    );
}

/// Logging out, a deactivation in plain SQL and a password change close
/// the upstream to the sessions they end within a second, through the same
/// path as every other route.
#[tokio::test]
async fn logout_deactivation_and_password_change_shut_the_upstream_within_a_second() {
    let site = site().await;
    let front = &site.front;

    let (browser, _) = front.logged_in_browser("susan").await;
    site.passes(get(&browser, "/app/")).await;
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    site.shut_within_a_second(&browser).await;

    let (bob, _) = front.logged_in_app("bob").await;
    let bobs_browser = front.browser();
    bobs_browser.login("bob", false).await.assert_status(200);
    site.passes(get(&bob, "/app/")).await;
    site.passes(get(&bobs_browser, "/app/")).await;
    site.authd
        .db
        .execute("UPDATE users SET is_active = false WHERE username = 'bob'");
    site.shut_within_a_second(&bob).await;
    site.shut_within_a_second(&bobs_browser).await;

    let (carol, _) = front.logged_in_browser("carol").await;
    let (carols_phone, _) = front.app_login("carol", false).await;
    site.passes(get(&carols_phone, "/app/")).await;
    let change = json!({"current_password": PASSWORD, "new_password": "purple monkey dishwasher", "new_password2": "purple monkey dishwasher"});
    carol
        .request(Method::POST, "/api/me/password")
        .csrf()
        .json(&change)
        .send()
        .await
        .assert_status(204);
    site.shut_within_a_second(&carols_phone).await;
    // The session that changed it lives on.
    site.passes(get(&carol, "/app/")).await;
}

/// Whatever `X-Authd-*` headers a client sends, the upstream sees authd's
/// answer: one value of each, the real caller's. An anonymous client gets
/// nowhere with them.
#[tokio::test]
async fn a_clients_own_identity_headers_never_reach_the_upstream() {
    let site = site().await;
    let front = &site.front;
    let (bob, _) = front.logged_in_app("bob").await;
    let bob_identity = identity_from_authd(&site, &bob).await;
    let forged: Vec<(&str, &str)> = vec![
        ("X-Authd-User-Id", "1"),
        ("X-Authd-Username", "admin"),
        ("X-Authd-Session", "0123456789abcdef0123456789abcdef"),
        ("X-Authd-Email-Verified", "true"),
        ("X-Authd-Email", "admin@example.com"),
    ];
    let also: Vec<(&str, &str)> = vec![
        // A second copy of each, and spellings some frameworks read as the
        // same header (nginx drops names with `_` by default).
        ("x-authd-user-id", "1"),
        ("x-authd-username", "admin"),
        ("X_Authd_User_Id", "1"),
        ("X-Authd_Username", "admin"),
    ];
    let forging = |request: Request| request.headers(&forged).headers(&also);

    let anonymous = front.anonymous();
    site.refused(forging(get(&anonymous, "/app/")), 401).await;
    site.refused(forging(post(&anonymous, "/app/posts")), 401)
        .await;

    let (susan, _) = front.logged_in_browser("susan").await;
    let susan_identity = identity_from_authd(&site, &susan).await;
    for request in [
        forging(get(&susan, "/app/")),
        forging(post(&susan, "/app/posts").csrf()),
        forging(get(&bob, "/app/")),
    ] {
        let reached = site.passes(request).await;
        let expected = if reached.all("authorization").is_empty() {
            &susan_identity
        } else {
            &bob_identity
        };
        assert_eq!(&identity_of(&reached), expected);
        let unknown: Vec<_> = reached
            .headers
            .iter()
            .filter(|(name, _)| name.replace('_', "-").starts_with("x-authd-"))
            .filter(|(name, _)| !IDENTITY.contains(&name.as_str()))
            .collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
