//! Throttling, not lockout: limits per (identifier, IP) and per IP, shared
//! through Postgres or Redis, with spoofed forwarding headers ignored.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Actor, PASSWORD, TestApp, TestResponse, secs, use_redis};
use authd::configuration::Bucket;

/// A login attempt by `from` (a browser, say) at the instance `app`.
async fn attempt(app: &TestApp, from: &Actor, username: &str, password: &str) -> TestResponse {
    let body = json!({"username": username, "password": password});
    from.via(app).post("/api/login", &body).await
}

fn retry_after(response: &TestResponse) -> u64 {
    response.problem(429);
    response.header("retry-after").unwrap().parse().unwrap()
}

async fn limited_app(per_identifier: u32, per_ip: u32) -> TestApp {
    TestApp::spawn_with(|s| {
        s.throttle.set_limit(Bucket::LoginAccount, per_identifier);
        s.throttle.set_limit(Bucket::LoginIp, per_ip);
        s.throttle.set_window(Bucket::LoginAccount, secs(15 * 60));
        s.throttle.set_window(Bucket::LoginIp, secs(15 * 60));
    })
    .await
}

#[tokio::test]
async fn failures_per_identifier_and_ip_are_throttled_before_the_password_check() {
    let app = limited_app(3, 100).await;
    app.user("susan").await;
    let attacker = app.browser_at("127.0.0.2");
    for _ in 0..3 {
        attempt(&app, &attacker, "susan", "wrong-password")
            .await
            .problem(401);
    }
    // Even the right password is refused now: no check runs at all.
    let refused = attempt(&app, &attacker, "SUSAN", PASSWORD).await;
    let wait = retry_after(&refused);
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    assert_eq!(refused.json()["title"], "Too many attempts");

    // The real user, elsewhere, is not locked out.
    let user = app.browser_at("127.0.0.3");
    attempt(&app, &user, "susan", PASSWORD)
        .await
        .assert_status(200);
    // A forwarding header from an untrusted peer is ignored, not believed.
    let spoofed = json!({"username": "susan", "password": PASSWORD});
    attacker
        .request(Method::POST, "/api/login")
        .json(&spoofed)
        .header("x-forwarded-for", "198.51.100.77")
        .send()
        .await
        .problem(429);
    attacker
        .request(Method::POST, "/api/login")
        .json(&spoofed)
        .header("forwarded", "for=198.51.100.77")
        .send()
        .await
        .problem(429);
}

#[tokio::test]
async fn failures_per_ip_are_throttled_across_identifiers() {
    let app = limited_app(100, 4).await;
    app.user("susan").await;
    let sprayer = app.browser_at("127.0.0.4");
    for name in ["ann", "bob", "cid", "dan"] {
        attempt(&app, &sprayer, name, "Password1!")
            .await
            .problem(401);
    }
    retry_after(&attempt(&app, &sprayer, "eve", "Password1!").await);
    retry_after(&attempt(&app, &sprayer, "susan", PASSWORD).await);
    attempt(&app, &app.browser_at("127.0.0.5"), "susan", PASSWORD)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_success_resets_the_identifiers_count() {
    let app = limited_app(3, 100).await;
    app.user("susan").await;
    // Two failures and a success, three times: six failures in all, never
    // three in a row, so never refused.
    for _ in 0..3 {
        let browser = app.browser();
        for _ in 0..2 {
            attempt(&app, &browser, "susan", "wrong-password")
                .await
                .problem(401);
        }
        attempt(&app, &browser, "susan", PASSWORD)
            .await
            .assert_status(200);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let app = TestApp::spawn_with(|s| {
        s.throttle.set_limit(Bucket::LoginAccount, 2);
        s.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.user("susan").await;
    let proxy = app.browser_at("127.0.0.6");
    let from = |client: &'static str| [("x-forwarded-for", client)];
    let wrong = json!({"username": "susan", "password": "wrong-password"});
    let right = json!({"username": "susan", "password": PASSWORD});
    for _ in 0..2 {
        proxy
            .request(Method::POST, "/api/login")
            .json(&wrong)
            .headers(&from("198.51.100.1"))
            .send()
            .await
            .problem(401);
    }
    proxy
        .request(Method::POST, "/api/login")
        .json(&right)
        .headers(&from("198.51.100.1"))
        .send()
        .await
        .problem(429);
    let other = app.browser_at("127.0.0.7");
    let response = other
        .request(Method::POST, "/api/login")
        .json(&right)
        .headers(&from("198.51.100.2"))
        .send()
        .await;
    response.assert_status(200);

    use authd::schema::sessions::dsl::*;
    use diesel::prelude::*;
    let recorded: Option<ipnet::IpNet> = sessions.select(ip).first(&mut app.db.connect()).unwrap();
    assert_eq!(recorded.unwrap().addr().to_string(), "198.51.100.2");
}

#[tokio::test]
async fn registration_is_throttled_per_ip() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::Registration, 2)).await;
    let (a, b) = (app.browser_at("127.0.0.8"), app.browser_at("127.0.0.9"));
    let body = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "password2": PASSWORD});
    for name in ["one", "two"] {
        a.post("/api/register", &body(name))
            .await
            .assert_status(201);
    }
    let refused = a.post("/api/register", &body("three")).await;
    retry_after(&refused);
    b.post("/api/register", &body("three"))
        .await
        .assert_status(201);
}

/// The same limits with the counts in Redis, as several instances would
/// share them. Addresses and names are random: the Redis server is shared.
#[tokio::test]
async fn redis_holds_the_counts_when_configured() {
    let app = TestApp::spawn_with(|s| {
        use_redis(s);
        s.throttle.set_limit(Bucket::LoginAccount, 2);
    })
    .await;
    let suffix = rand::random::<u32>();
    let name = format!("redis{suffix}");
    app.user(&name).await;
    let ip = format!(
        "127.{}.{}.{}",
        suffix >> 24 & 0xff,
        suffix >> 16 & 0xff,
        (suffix >> 8 & 0xfe) + 1
    );
    let client = app.browser_at(&ip);
    for _ in 0..2 {
        attempt(&app, &client, &name, "wrong-password")
            .await
            .problem(401);
    }
    retry_after(&attempt(&app, &client, &name, PASSWORD).await);

    // A second instance sharing the Redis sees the same counts.
    let mut second = TestApp::spawn_with(|s| {
        use_redis(s);
        s.throttle.set_limit(Bucket::LoginAccount, 2);
    })
    .await;
    second
        .restart_with(|s| s.database.url = app.settings.database.url.clone())
        .await;
    attempt(&second, &client, &name, PASSWORD)
        .await
        .problem(429);
}

/// Counted before the password check, atomically: a burst of parallel
/// guesses gets no more tries than a patient attacker.
#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_limit() {
    let app = TestApp::spawn_with(|s| {
        s.throttle.set_limit(Bucket::LoginAccount, 3);
        s.passwords.bcrypt_cost = 8;
    })
    .await;
    app.user("susan").await;
    let attacker = app.browser_at("127.0.0.11");
    let guesses = (0..12).map(|_| attempt(&app, &attacker, "susan", "wrong-password"));
    let responses = futures_util::future::join_all(guesses).await;
    let checked = responses.iter().filter(|r| r.status == 401).count();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!((checked, refused), (3, 9));
}

/// Behind a proxy that writes one forwarding header, a client's own copy
/// of the other passes through untouched: only the configured one counts.
#[tokio::test]
async fn only_the_configured_forwarding_header_is_believed() {
    use authd::configuration::ClientIpHeader;
    use authd::schema::sessions::dsl::*;
    use diesel::prelude::*;

    let mut app = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.user("susan").await;
    let proxy = app.browser_at("127.0.0.6");
    let headers = [
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=203.0.113.66"),
    ];
    let login = json!({"username": "susan", "password": PASSWORD});
    let newest_ip = |app: &TestApp| -> String {
        let recorded: Option<ipnet::IpNet> = sessions
            .select(ip)
            .order(created_at.desc())
            .first(&mut app.db.connect())
            .unwrap();
        recorded.unwrap().addr().to_string()
    };

    proxy
        .request(Method::POST, "/api/login")
        .json(&login)
        .headers(&headers)
        .send()
        .await
        .assert_status(200);
    assert_eq!(
        newest_ip(&app),
        "198.51.100.1",
        "X-Forwarded-For by default"
    );

    app.restart_with(|s| s.http.client_ip_header = ClientIpHeader::Forwarded)
        .await;
    let proxy = app.browser_at("127.0.0.6");
    proxy
        .request(Method::POST, "/api/login")
        .json(&login)
        .headers(&headers)
        .send()
        .await
        .assert_status(200);
    assert_eq!(newest_ip(&app), "203.0.113.66", "Forwarded when configured");
}

/// Failures count against the account however its name is spelt: username
/// or address, in any case, give one count, not one each.
#[tokio::test]
async fn failures_count_per_account_whatever_the_spelling() {
    let app = limited_app(3, 100).await;
    app.user("victim").await;
    let from = app.browser();
    for spelling in ["victim", "VICTIM@EXAMPLE.COM", " victim@example.com "] {
        attempt(&app, &from, spelling, "wrong-password")
            .await
            .problem(401);
    }
    for spelling in ["Victim", "victim@example\u{3002}com"] {
        retry_after(&attempt(&app, &from, spelling, PASSWORD).await);
    }
    // An unknown name is counted under its normal spelling, too.
    for spelling in [
        "ghost@example.com",
        "GHOST@example.com",
        "ghost@EXAMPLE.com",
    ] {
        attempt(&app, &from, spelling, "wrong-password")
            .await
            .problem(401);
    }
    retry_after(&attempt(&app, &from, "Ghost@Example.Com", "wrong-password").await);
}

/// Instances in the middle of a key rotation (new SECRET_KEY, the old one
/// as SECRET_KEY_PREVIOUS) share one count: the throttle is keyed by a
/// secret in the database, not by SECRET_KEY.
#[tokio::test]
async fn instances_with_rotated_keys_share_one_count() {
    let old = app_key(b"the-old-secret-key-");
    let new = app_key(b"the-new-secret-key-");
    let first = TestApp::spawn_with(|s| {
        s.throttle.set_limit(Bucket::LoginAccount, 3);
        s.secrets.key = old.clone();
    })
    .await;
    let second = first
        .sibling(|s| {
            s.secrets.key = new.clone();
            s.secrets.previous = Some(old.clone());
        })
        .await;
    first.user("susan").await;
    let from = first.browser();
    attempt(&first, &from, "susan", "wrong-password")
        .await
        .problem(401);
    attempt(&second, &from, "susan", "wrong-password")
        .await
        .problem(401);
    attempt(&first, &from, "susan", "wrong-password")
        .await
        .problem(401);
    retry_after(&attempt(&second, &from, "susan", PASSWORD).await);
    retry_after(&attempt(&first, &from, "susan", PASSWORD).await);
}

fn app_key(seed: &[u8]) -> authd::configuration::SecretKey {
    authd::configuration::SecretKey::new(seed.repeat(4)).unwrap()
}

/// A storm of correct passwords, at one account and at many behind one
/// address, is never refused: only completed failures count, and attempts
/// in flight make others wait rather than fail. In both stores.
#[tokio::test]
async fn concurrency_alone_never_produces_a_429() {
    for redis in [false, true] {
        let app = TestApp::spawn_with(|s| {
            s.throttle.set_limit(Bucket::LoginAccount, 3);
            s.throttle.set_limit(Bucket::LoginIp, 5);
            s.passwords.bcrypt_cost = 6;
            if redis {
                use_redis(s);
            }
        })
        .await;
        let suffix = rand::random::<u32>();
        let names: Vec<String> = (0..4).map(|n| format!("storm{suffix}x{n}")).collect();
        for name in &names {
            app.user(name).await;
        }
        // An address of this run's own: Redis outlives the test.
        let ip = format!(
            "127.{}.{}.{}",
            suffix >> 24 & 0xff,
            suffix >> 16 & 0xff,
            (suffix >> 8 & 0xfe) + 1
        );
        let logins = (0..24).map(|n| {
            let (app, name, ip) = (&app, names[n % 2 * (n % 4)].clone(), ip.clone());
            async move {
                let browser = app.browser_at(&ip);
                attempt(app, &browser, &name, PASSWORD)
                    .await
                    .status
                    .as_u16()
            }
        });
        let statuses = futures_util::future::join_all(logins).await;
        assert!(
            statuses.iter().all(|s| *s == 200),
            "redis {redis}: {statuses:?}"
        );
    }
}

/// Statuses, for a failure message.
fn statuses(responses: &[TestResponse]) -> Vec<u16> {
    responses.iter().map(|r| r.status.as_u16()).collect()
}

/// Asserts that a flood's answers are `ok` or, past the cap on one
/// client's password checks in flight, 429 with `Retry-After: 1`; some of
/// each, and never anything else (a 5xx would mean the hash queue
/// overflowed).
fn assert_capped(responses: &[TestResponse], ok: u16) {
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert!(
        !refused.is_empty(),
        "none refused: {:?}",
        statuses(responses)
    );
    for response in refused {
        response.problem(429);
        assert_eq!(response.header("retry-after"), Some("1"));
    }
    assert!(
        responses.iter().any(|r| r.status == ok)
            && responses.iter().all(|r| r.status == ok || r.status == 429),
        "{:?}",
        statuses(responses)
    );
}

/// Settings where one client may have two password checks in flight, and
/// each takes long enough (bcrypt cost 10) that a flood's stay in flight
/// together.
fn two_checks_in_flight(s: &mut authd::configuration::Settings) {
    s.throttle.login_in_flight_per_ip = 2;
    s.passwords.bcrypt_cost = 10;
}

/// A flood of logins from one address cannot fill the hash queue everyone
/// shares: past LOGIN_IN_FLIGHT_PER_IP checks in flight it is refused at
/// once, and a login from another address goes through meanwhile.
#[tokio::test]
async fn a_login_flood_from_one_address_is_capped_in_flight() {
    let app = TestApp::spawn_with(two_checks_in_flight).await;
    app.user("susan").await;
    app.user("olga").await;
    // A browser each: a logged-in browser's next login would be a 409.
    let flood = (0..12).map(|_| {
        let app = &app;
        async move { attempt(app, &app.browser_at("127.0.0.12"), "susan", PASSWORD).await }
    });
    let other = app.browser_at("127.0.0.13");
    let elsewhere = attempt(&app, &other, "olga", PASSWORD);
    let (responses, other) = tokio::join!(futures_util::future::join_all(flood), elsewhere);
    other.assert_status(200);
    assert_capped(&responses, 200);
}

/// The same for registrations, which hash a password too.
#[tokio::test]
async fn a_registration_flood_from_one_address_is_capped_in_flight() {
    let app = TestApp::spawn_with(two_checks_in_flight).await;
    let body = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "password2": PASSWORD});
    let flooder = app.browser_at("127.0.0.14");
    let flood = (0..12).map(|n| {
        let (flooder, body) = (&flooder, body(&format!("flood{n}")));
        async move { flooder.post("/api/register", &body).await }
    });
    let (other, olga) = (app.browser_at("127.0.0.15"), body("olga"));
    let elsewhere = other.post("/api/register", &olga);
    let (responses, other) = tokio::join!(futures_util::future::join_all(flood), elsewhere);
    other.assert_status(201);
    assert_capped(&responses, 201);
}
