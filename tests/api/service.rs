//! Health and readiness probes, the served contract, and database creation
//! at start-up.

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    health.assert_status(200);
    assert_eq!(health.json()["status"], "ok");
    let ready = app.get("/readyz").await;
    ready.assert_status(200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn the_contract_is_served_byte_for_byte() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/openapi.yaml").await;
    response.assert_status(200);
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert!(
        response.body == on_disk,
        "the served spec differs from openapi.yaml"
    );
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/yaml")
    );
}

#[tokio::test]
async fn the_server_creates_its_database_and_migrates_it() {
    // A database name nobody has made yet: start-up must create it.
    let name = format!("authd_test_fresh_{}", std::process::id());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable");
    tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            authd::db::migrations::prepare(&url).expect("first start creates and migrates");
            authd::db::migrations::prepare(&url).expect("a second start finds nothing to do");
        }
    })
    .await
    .unwrap();
    let db = crate::helpers::TestDatabase { name };
    let count: i64 = {
        use diesel::prelude::*;
        authd::schema::users::table
            .count()
            .get_result(&mut db.connect())
            .unwrap()
    };
    assert_eq!(count, 0);
}
