//! Postgres outages: quick 503s while it is gone, and recovery without a
//! restart when it is back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

/// Postgres going away mid-flight (connections killed, new ones refused)
/// must give quick 503s, not hangs or 500s, and the service must heal by
/// itself when Postgres is back.
#[tokio::test]
async fn a_database_outage_gives_quick_503s_and_heals() {
    let app = TestApp::spawn().await;
    let login = app.logged_in("susan").await;
    let token = login.token().to_owned();

    app.db.set_reachable(false);
    let started = Instant::now();
    let responses = [
        app.get("/readyz").await,
        app.me_with_token(&token).await,
        app.post(
            "/api/login",
            &json!({"username": "susan", "password": PASSWORD}),
        )
        .await,
        app.register("other", "other@example.com").await,
        app.get("/api/me").await,
    ];
    for response in &responses {
        response.problem(503);
        assert!(response.header("retry-after").is_some());
    }
    // Each request waits at most DB_TIMEOUT (2 s here) for a connection.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    app.get("/healthz").await.assert_status(200);

    app.db.set_reachable(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = app.get("/readyz").await;
        if ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: {}",
            ready.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.me_with_token(&token).await.assert_status(200);
    app.get("/api/me").await.assert_status(200);
}
