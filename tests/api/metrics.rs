//! `/metrics`: on its own listener, in Prometheus' text format.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, own_status};
use authd::configuration::Bucket;
use authd::services::login::LOGIN_OUTCOMES;
use authd::services::mail_kinds;

/// `GET /metrics` answers on its own listener, in Prometheus' text format,
/// with what an operator watches; the API's port does not serve it.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = TestApp::spawn_with(|s| {
        s.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        s.throttle.set_limit(Bucket::LoginAccount, 1);
    })
    .await;
    let (susan, _) = app.logged_in_app("susan").await;
    let browser = app.browser();
    let wrong = json!({"username": "susan", "password": "wrong-guess-123"});
    browser.post("/api/login", &wrong).await.problem(401);
    browser.post("/api/login", &wrong).await.problem(429);
    app.register("olga", "olga@example.com")
        .await
        .assert_status(201);
    app.db
        .execute("UPDATE users SET is_active = false WHERE username = 'olga'");
    let olga = json!({"username": "olga", "password": PASSWORD});
    browser.post("/api/login", &olga).await.problem(403);
    let list = susan.get("/api/sessions").await.json();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    susan
        .request(Method::DELETE, &format!("/api/sessions/{id}"))
        .send()
        .await
        .assert_status(204);
    browser.get("/metrics").await.problem(404);
    let invented = Method::from_bytes(b"INVENTED").unwrap();
    browser
        .request(invented, "/api/me")
        .send()
        .await
        .problem(405);

    // Not the API: openapi.yaml does not describe this listener.
    let scraped = reqwest::get(app.metrics_url()).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = scraped.text().await.unwrap();
    let head = reqwest::Client::new()
        .head(app.metrics_url())
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.text().await.unwrap().is_empty());
    for line in [
        r#"authd_logins_total{outcome="success"} 1"#,
        r#"authd_logins_total{outcome="failure"} 1"#,
        r#"authd_logins_total{outcome="throttled"} 1"#,
        r#"authd_logins_total{outcome="inactive"} 1"#,
        r#"authd_registrations_total{outcome="created"} 2"#,
        "authd_sessions_created_total 1",
        "authd_sessions_revoked_total 1",
        // By route template: never the session id in the path.
        r#"authd_http_requests_total{method="DELETE",route="/api/sessions/{id}",status="204"} 1"#,
        r#"authd_http_requests_total{method="POST",route="/api/login",status="401"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    for name in [
        "authd_http_request_duration_seconds_bucket",
        "authd_db_pool_max_connections",
        "authd_db_pool_connections",
        "authd_mail_outbox_depth",
        "authd_db_pool_idle_connections",
        "authd_db_pool_waiting",
        "authd_blocking_tasks",
        "authd_session_activity_pending",
        "authd_hash_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(!text.contains(&id), "a session id in the metrics");
    // Any token is a method to actix; the label keeps to a fixed few.
    assert!(!text.contains("INVENTED"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
}

/// Right after start-up every counter is there at zero, for each label
/// value it can take, and every gauge is there: a rate or an alert sees
/// them before their first event. Every metric says what it measures.
#[tokio::test]
async fn every_metric_is_described_and_there_from_the_start() {
    let app = TestApp::spawn_with(|s| {
        s.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let scrape = || async {
        reqwest::get(app.metrics_url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = scrape().await;
    let mut zeros = vec![
        "authd_sessions_created_total 0".to_owned(),
        "authd_sessions_revoked_total 0".to_owned(),
        "authd_log_lines_dropped_total 0".to_owned(),
    ];
    // The services' own lists: an outcome or a kind of mail added there is
    // checked here without a copy to forget.
    let mail_kinds: Vec<&str> = mail_kinds().iter().map(|kind| kind.0).collect();
    for (name, label, values) in [
        ("authd_logins_total", "outcome", LOGIN_OUTCOMES),
        (
            "authd_registrations_total",
            "outcome",
            &["created", "invalid", "throttled"],
        ),
        ("authd_session_cache_total", "result", &["hit", "miss"]),
    ] {
        for value in values {
            zeros.push(format!(r#"{name}{{{label}="{value}"}} 0"#));
        }
    }
    for kind in &mail_kinds {
        for outcome in ["sent", "retry", "skipped", "dropped"] {
            zeros.push(format!(
                r#"authd_mails_total{{kind="{kind}",outcome="{outcome}"}} 0"#
            ));
        }
    }
    for line in &zeros {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    for gauge in [
        "authd_db_pool_max_connections",
        "authd_db_pool_connections",
        "authd_db_pool_idle_connections",
        "authd_db_pool_waiting",
        "authd_blocking_tasks",
        "authd_session_activity_pending",
        "authd_hash_queue_depth",
        "authd_mail_outbox_depth",
    ] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{gauge} ")))
            .unwrap_or_else(|| panic!("{gauge} missing:\n{text}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{gauge} {value}"));
    }
    assert_described(&text);

    // The request metrics appear with the first request, described too.
    app.anonymous().get("/healthz").await.assert_status(200);
    let text = scrape().await;
    assert!(
        text.contains("authd_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert_described(&text);
}

/// The README's metrics table names every login outcome and every kind of
/// mail, from the same lists `/metrics` zeroes.
#[test]
fn the_readme_names_every_login_outcome_and_mail_kind() {
    let readme = include_str!("../../README.md");
    let row = |metric: &str| {
        readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{metric}")))
            .unwrap_or_else(|| panic!("no row for {metric} in the README's metrics table"))
    };
    let logins = row("authd_logins_total{outcome}");
    for outcome in LOGIN_OUTCOMES {
        assert!(
            logins.contains(&format!("`{outcome}`")),
            "{outcome}: {logins}"
        );
    }
    let mails = row("authd_mails_total{kind,outcome}");
    for kind in mail_kinds() {
        assert!(
            mails.contains(&format!("`{}`", kind.0)),
            "{}: {mails}",
            kind.0
        );
    }
}

/// Asserts that every metric family in a scrape has a `# TYPE` and a
/// non-empty `# HELP`.
fn assert_described(text: &str) {
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            typed.iter().any(|family| name.starts_with(family)),
            "{name} has no # TYPE:\n{text}"
        );
    }
    for family in typed {
        let help = text
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# HELP {family} ")));
        assert!(
            help.is_some_and(|help| !help.trim().is_empty()),
            "{family} has no # HELP:\n{text}"
        );
    }
}

/// A histogram's samples are folded into its buckets every second, whether
/// or not anyone scrapes: memory stays flat however long `/metrics` goes
/// unread (before, every request's sample stayed until the next scrape).
#[test]
fn histograms_stay_flat_while_nobody_scrapes() {
    let kinds: Vec<&'static str> = mail_kinds().into_iter().map(|kind| kind.0).collect();
    authd::telemetry::metrics(authd::telemetry::LabelValues {
        login_outcomes: LOGIN_OUTCOMES,
        mail_kinds: &kinds,
    });
    let resident_kib = || own_status("VmRSS");
    let duration = metrics::histogram!("authd_http_request_duration_seconds", "method" => "GET", "route" => "/api/me");
    // 24 MiB of samples a round, if they were kept.
    let round = || {
        for _ in 0..3_000_000 {
            duration.record(0.001);
        }
        std::thread::sleep(authd::telemetry::METRICS_UPKEEP * 2);
    };
    round();
    let after_one = resident_kib();
    round();
    round();
    let after_three = resident_kib();
    assert!(
        after_three < after_one + 12 * 1024,
        "resident memory grew from {after_one} KiB to {after_three} KiB"
    );
}
