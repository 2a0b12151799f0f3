//! Password policy, hash upkeep, idle timeouts, cookie and header hygiene,
//! CORS, the Origin check and the audit trail.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, secs};
use authd::configuration::Bucket;

#[tokio::test]
async fn the_password_policy_explains_each_refusal() {
    let app = TestApp::spawn().await;
    let cases = [
        ("short", "at least 8"),
        ("password", "commonly used"),
        ("Baseball", "commonly used"),
        ("qwertyuiop", "commonly used"),
        ("pat_rick", "username"),
        ("xxPAT_RICKxx", "username"),
        ("p.star.99-", "email"),
        ("P.STAR", "at least 8"),
    ];
    for (password, fragment) in cases {
        let body = json!({"username": "pat_rick", "email": "p.star@example.com", "password": password, "password2": password});
        let problem = app.post("/api/register", &body).await.problem(422);
        let message = problem["errors"]["password"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(fragment), "{password}: {problem}");
    }
    // No composition rules: a long lower-case phrase is fine.
    let good = "purple monkey dishwasher";
    let body = json!({"username": "pat_rick", "email": "p.star@example.com", "password": good, "password2": good});
    app.post("/api/register", &body).await.assert_status(201);
}

#[tokio::test]
async fn a_raised_bcrypt_cost_upgrades_the_hash_at_the_next_login() {
    let mut app = TestApp::spawn().await;
    app.user("susan").await;
    let hash = |app: &TestApp| -> String {
        authd::schema::users::table
            .select(authd::schema::users::password_hash)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(hash(&app).starts_with("$2b$04$"));
    app.restart_with(|s| s.passwords.bcrypt_cost = 5).await;
    app.login("susan", false).await.assert_status(200);
    let upgraded = hash(&app);
    assert!(upgraded.starts_with("$2b$05$"), "{upgraded}");
    // The new hash still verifies the same password.
    let (_, other) = app.new_browser();
    app.login_from(&other, "susan", false)
        .await
        .assert_status(200);
    assert_eq!(hash(&app), upgraded, "no second upgrade at the same cost");
}

#[tokio::test]
async fn idle_plain_sessions_end_but_remembered_ones_do_not() {
    let app = TestApp::spawn_with(|s| s.sessions.idle_ttl = secs(2)).await;
    app.user("susan").await;
    let plain = app.login("susan", false).await.login_body();
    let (_, phone) = app.new_browser();
    let remembered = app.login_from(&phone, "susan", true).await.login_body();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.get("/api/me").await.problem(401);
    app.me_with_token(plain.token()).await.problem(401);
    app.me_with_token(remembered.token())
        .await
        .assert_status(200);
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let token = login.token();
    use authd::schema::sessions::dsl::*;
    let seen = |app: &TestApp| -> chrono::DateTime<chrono::Utc> {
        sessions
            .select(last_seen_at)
            .first(&mut app.db.connect())
            .unwrap()
    };
    let at_login = seen(&app);
    for _ in 0..3 {
        app.me_with_token(token).await.assert_status(200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen(&app), at_login, "no write within the minute");
    // As if a minute had passed: the row is set back, and touching
    // expires_at tells the instance (which caches the session) to re-read it.
    app.db.execute(
        "UPDATE sessions SET last_seen_at = now() - interval '90 seconds', expires_at = expires_at",
    );
    let stale = seen(&app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.me_with_token(token).await.assert_status(200);
    // Written off the request path, in the next batch (within a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while seen(&app) <= stale + chrono::TimeDelta::seconds(80) {
        assert!(
            std::time::Instant::now() < deadline,
            "activity after a minute is noted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let app = TestApp::spawn_with(|s| s.http.cookie_secure = true).await;
    app.user("susan").await;
    let response = app.login("susan", true).await;
    let cookie = response
        .set_cookie("__Host-authd_session")
        .expect("a __Host- cookie");
    for attribute in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(response.set_cookie("authd_session").is_none());
    let logout = app.logout_with_token(response.login_body().token()).await;
    logout.assert_status(204);
    assert!(
        logout
            .set_cookie("__Host-authd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let responses = [
        app.get("/healthz").await,
        app.get("/readyz").await,
        app.get("/api/me").await,
        app.bare(Method::GET, "/api/me", None, &[]).await,
        app.get("/nope").await,
        app.get("/api/nope").await,
        app.request(Method::DELETE, "/api/login", None, &[]).await,
        app.raw_request(
            Method::POST,
            "/api/login",
            &[("content-type", "text/plain")],
            b"x".to_vec(),
        )
        .await,
        app.post("/api/register", &json!({})).await,
        app.get("/api/openapi.yaml").await,
    ];
    for response in &responses {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(
            response.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
    for response in &responses[2..4] {
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "user data and 401s"
        );
    }
    let logout = app.logout_with_cookie(login.csrf()).await;
    logout.assert_status(204);
    // Opt-in (CLEAR_SITE_DATA): browsers apply it to the whole domain.
    assert_eq!(logout.header("clear-site-data"), None);
}

const SPA: &str = "https://app.example.com";

#[tokio::test]
async fn cors_serves_the_allowlist_and_no_one_else() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, x-csrf-token",
            ),
        ]
    };
    let allowed = app
        .bare(Method::OPTIONS, "/api/login", None, &preflight(SPA))
        .await;
    allowed.assert_status(200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SPA));
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    for needed in ["authorization", "content-type", "x-csrf-token"] {
        assert!(headers.contains(needed), "{headers}");
    }

    let refused = app
        .bare(
            Method::OPTIONS,
            "/api/login",
            None,
            &preflight("https://evil.example"),
        )
        .await;
    assert!(refused.status.is_client_error());
    assert!(refused.header("access-control-allow-origin").is_none());

    let login = app.logged_in("susan").await;
    let auth = login.bearer();
    let from_spa = app
        .bare(
            Method::GET,
            "/api/me",
            None,
            &[("origin", SPA), ("authorization", &auth)],
        )
        .await;
    from_spa.assert_status(200);
    assert_eq!(from_spa.header("access-control-allow-origin"), Some(SPA));
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let response = app
            .bare(
                Method::GET,
                "/api/me",
                None,
                &[("origin", origin), ("authorization", &auth)],
            )
            .await;
        assert!(
            response.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn cookie_writes_from_a_foreign_origin_are_refused() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    let login = app.logged_in("susan").await;
    let own = app.address.clone();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:1"),
        ("referer", "https://evil.example/page"),
    ] {
        let response = app
            .request(
                Method::POST,
                "/api/logout",
                None,
                &[("x-csrf-token", login.csrf()), (header, value)],
            )
            .await;
        assert_eq!(
            response.problem(403)["type"],
            "urn:authd:problem:foreign-origin",
            "{header}: {value}"
        );
    }
    app.get("/api/me").await.assert_status(200);
    // Whatever the credential: a foreign page's unsafe request is refused
    // before anything runs, so the token's session lives on.
    let (_, other) = app.new_browser();
    let second = app.login_from(&other, "susan", false).await.login_body();
    let refused = app
        .bare(
            Method::POST,
            "/api/logout",
            None,
            &[
                ("authorization", &second.bearer()),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(
        refused.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    app.me_with_token(second.token()).await.assert_status(200);
    for origin in [own.as_str(), SPA] {
        let (_, browser) = app.new_browser();
        let fresh = app.login_from(&browser, "susan", false).await.login_body();
        app.request_with(
            &browser,
            Method::POST,
            "/api/logout",
            None,
            &[("x-csrf-token", fresh.csrf()), ("origin", origin)],
        )
        .await
        .assert_status(204);
    }
    app.logout_with_token(login.token())
        .await
        .assert_status(204);
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_from_where() {
    let app = TestApp::spawn_with(|s| s.throttle.set_limit(Bucket::LoginAccount, 1)).await;
    let user = app.user("susan").await;
    let susan = user["id"].as_i64().unwrap();
    app.post(
        "/api/login",
        &json!({"username": "susan", "password": "wrong-password"}),
    )
    .await
    .problem(401);
    app.post(
        "/api/login",
        &json!({"username": "susan", "password": PASSWORD}),
    )
    .await
    .problem(429);
    let other = app.browser_at("127.0.0.10");
    let login = app.login_from(&other, "Susan", false).await.login_body();
    app.request_with(
        &other,
        Method::POST,
        "/api/logout",
        None,
        &[
            ("authorization", &login.bearer()),
            ("user-agent", "audit-test"),
        ],
    )
    .await
    .assert_status(204);

    use authd::schema::auth_events::dsl::*;
    type Row = (String, Option<i64>, Option<String>, Option<ipnet::IpNet>);
    let rows: Vec<Row> = auth_events
        .order(id)
        .select((event, user_id, identifier, ip))
        .load(&mut app.db.connect())
        .unwrap();
    let rows: Vec<(String, Option<i64>, Option<String>, String)> = rows
        .into_iter()
        .map(|(e, u, i, a)| (e, u, i, a.map(|a| a.addr().to_string()).unwrap_or_default()))
        .collect();
    let expected = [
        ("register", Some(susan), Some("susan"), "127.0.0.1"),
        ("login_failure", Some(susan), Some("susan"), "127.0.0.1"),
        // The throttle counts per account, so it knows whose it refused.
        ("login_throttled", Some(susan), Some("susan"), "127.0.0.1"),
        ("login_success", Some(susan), Some("Susan"), "127.0.0.10"),
        ("logout", Some(susan), None, "127.0.0.10"),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, (e, u, i, a)) in rows.iter().zip(expected) {
        assert_eq!(
            (row.0.as_str(), row.1, row.2.as_deref(), row.3.as_str()),
            (e, u, i, a)
        );
    }
}

#[tokio::test]
async fn behind_a_host_rewriting_proxy_public_url_names_the_own_origin() {
    let app =
        TestApp::spawn_with(|s| s.http.public_origin = Some("https://auth.example.com".into()))
            .await;
    let login = app.logged_in("susan").await;
    let csrf = login.csrf();
    let own = app.address.clone();
    // The Host header now says nothing: only PUBLIC_URL is this site.
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[("x-csrf-token", csrf), ("origin", &own)],
    )
    .await
    .problem(403);
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[
            ("x-csrf-token", csrf),
            ("origin", "https://auth.example.com"),
        ],
    )
    .await
    .assert_status(204);
}

/// A staging proxy's Basic auth must not hide the session cookie.
#[tokio::test]
async fn a_foreign_authorization_scheme_leaves_the_cookie_in_charge() {
    let app = TestApp::spawn().await;
    app.logged_in("susan").await;
    app.request(
        Method::GET,
        "/api/me",
        None,
        &[("authorization", "Basic c3RhZ2luZzpzZWNyZXQ=")],
    )
    .await
    .assert_status(200);
    // A bearer token that fails is a failed credential, not a fallback.
    app.request(
        Method::GET,
        "/api/me",
        None,
        &[("authorization", "Bearer garbage")],
    )
    .await
    .problem(401);
}

/// bcrypt reads 72 bytes: exactly 72 is accepted and used in full, and a
/// longer guess that starts with the same 72 bytes does not match.
#[tokio::test]
async fn a_72_byte_password_works_and_longer_guesses_do_not_match() {
    let app = TestApp::spawn().await;
    let password = "horse-battery-".repeat(6)[..72].to_owned();
    assert_eq!(password.len(), 72);
    let body = json!({"username": "susan", "email": "s@example.com", "password": password, "password2": password});
    app.post("/api/register", &body).await.assert_status(201);
    let (_, browser) = app.new_browser();
    let longer = format!("{password}extra");
    app.request_with(
        &browser,
        Method::POST,
        "/api/login",
        Some(&json!({"username": "susan", "password": longer})),
        &[],
    )
    .await
    .problem(401);
    app.request_with(
        &browser,
        Method::POST,
        "/api/login",
        Some(&json!({"username": "susan", "password": password})),
        &[],
    )
    .await
    .assert_status(200);
}

/// Origins are compared whole: the plain-http server's own host and port
/// under `https` is another origin.
#[tokio::test]
async fn the_origin_check_compares_scheme_host_and_port() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let own = app.address.clone();
    let https = own.replacen("http://", "https://", 1);
    let response = app
        .request(
            Method::POST,
            "/api/logout",
            None,
            &[("x-csrf-token", login.csrf()), ("origin", &https)],
        )
        .await;
    assert_eq!(
        response.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    app.get("/api/me").await.assert_status(200);
    app.request(
        Method::POST,
        "/api/logout",
        None,
        &[("x-csrf-token", login.csrf()), ("origin", &own)],
    )
    .await
    .assert_status(204);
}

/// A foreign page can make a browser post without asking (a form, a
/// `text/plain` fetch): such a request is refused before anything runs,
/// with or without a session, so it can neither log the browser out nor
/// into the attacker's account. Clients that send no `Origin` or `Referer`
/// (curl, apps) are unaffected.
#[tokio::test]
async fn a_foreign_page_cannot_make_the_browser_act() {
    let app = TestApp::spawn().await;
    app.user("attacker").await;
    let foreign = [("origin", "https://evil.example")];
    let refer = [("referer", "https://evil.example/page")];
    let text = |headers: &[(&'static str, &'static str)]| {
        let mut all = vec![("content-type", "text/plain")];
        all.extend_from_slice(headers);
        all
    };
    let logout = app
        .raw_request(Method::POST, "/api/logout", &text(&foreign), Vec::new())
        .await;
    assert_eq!(
        logout.problem(403)["type"],
        "urn:authd:problem:foreign-origin"
    );
    assert!(logout.header("clear-site-data").is_none());
    assert!(logout.set_cookie("csrf_token").is_none());

    let credentials = format!(r#"{{"username":"attacker","password":"{PASSWORD}"}}"#);
    for headers in [&foreign, &refer] {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        let login = app
            .raw_request(
                Method::POST,
                "/api/login",
                &headers,
                credentials.clone().into_bytes(),
            )
            .await;
        login.problem(403);
        assert!(login.set_cookie("authd_session").is_none());
        let register = app
            .raw_request(Method::POST, "/api/register", &headers, b"{}".to_vec())
            .await;
        register.problem(403);
    }
    let sessions: i64 = {
        use authd::schema::sessions::dsl::*;
        sessions.count().get_result(&mut app.db.connect()).unwrap()
    };
    assert_eq!(sessions, 0, "no login went through");
    // No Origin, no Referer: not a browser, not refused.
    app.raw_request(
        Method::POST,
        "/api/login",
        &[("content-type", "application/json")],
        credentials.into_bytes(),
    )
    .await
    .assert_status(200);
    app.raw_request(Method::POST, "/api/logout", &text(&[]), Vec::new())
        .await
        .assert_status(204);
}

/// However short the idle timeout, a session in use is never ended by it:
/// activity is noted at least every quarter of the timeout.
#[tokio::test]
async fn a_session_in_use_outlives_a_short_idle_timeout() {
    let app = TestApp::spawn_with(|s| s.sessions.idle_ttl = secs(3)).await;
    let login = app.logged_in("susan").await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        app.get("/api/me").await.assert_status(200);
        app.me_with_token(login.token()).await.assert_status(200);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    app.get("/api/me").await.problem(401);
}

/// HEAD answers like GET on every GET route: same status and headers, no
/// body.
#[tokio::test]
async fn head_answers_like_get() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let auth = login.bearer();
    for (path, headers) in [
        ("/healthz", vec![]),
        ("/readyz", vec![]),
        ("/api/openapi.yaml", vec![]),
        ("/api/me", vec![("authorization", auth.as_str())]),
        ("/api/me", vec![]),
        ("/api/sessions", vec![("authorization", auth.as_str())]),
        ("/api/sessions", vec![]),
    ] {
        let get = app.bare(Method::GET, path, None, &headers).await;
        let head = app.bare(Method::HEAD, path, None, &headers).await;
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}");
        for name in [
            "content-type",
            "cache-control",
            "www-authenticate",
            "x-content-type-options",
            "content-security-policy",
        ] {
            assert_eq!(head.header(name), get.header(name), "{path}: {name}");
        }
    }
    let wrong = app.bare(Method::PUT, "/api/me", None, &[]).await;
    let allowed = wrong.problem(405);
    assert_eq!(allowed["status"], 405);
    let allow = wrong.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
}

/// Preflight answers, granted or refused, are for the browser that asked:
/// no shared cache keeps them, and they say what they depend on.
#[tokio::test]
async fn preflight_answers_are_not_cached_and_say_what_they_vary_on() {
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![SPA.into()]).await;
    for origin in [SPA, "https://evil.example"] {
        let response = app
            .bare(
                Method::OPTIONS,
                "/api/login",
                None,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
            )
            .await;
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "{origin}"
        );
        let vary = response.header("vary").unwrap_or_default();
        assert!(vary.contains("Origin"), "{origin}: {vary}");
    }
}
