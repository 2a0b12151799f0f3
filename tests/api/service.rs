//! Health and readiness probes, the served contract, and database creation
//! at start-up.

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let health = browser.get("/healthz").await;
    health.assert_status(200);
    assert_eq!(health.json()["status"], "ok");
    let ready = browser.get("/readyz").await;
    ready.assert_status(200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn the_contract_is_served_byte_for_byte() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let response = browser.get("/api/openapi.yaml").await;
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
    let db = crate::helpers::TestDatabase::named(name);
    let count: i64 = {
        use diesel::prelude::*;
        authd::schema::users::table
            .count()
            .get_result(&mut db.connect())
            .unwrap()
    };
    assert_eq!(count, 0);
}

/// Addresses stored before normalisation are rewritten in their normal form
/// at the next start, once; one that would collide with another account's
/// is left for an operator to decide.
#[tokio::test]
async fn existing_addresses_are_migrated_to_their_normal_form() {
    use diesel::prelude::*;
    let db = tokio::task::spawn_blocking(crate::helpers::TestDatabase::create)
        .await
        .unwrap();
    let hash = "$2b$04$abcdefghijklmnopqrstuu5K5m1nS2V2hb5l2x5L0m8Cq9d8w3Z1W";
    db.execute(&format!(
        "INSERT INTO users (username, email, password_hash) VALUES
           ('plain', 'dup@example.com', '{hash}'),
           ('hyphen', 'dup@ex\u{00AD}ample.com', '{hash}'),
           ('idn', 'idn@bücher.example', '{hash}'),
           ('wide', '\u{FF57}\u{FF49}\u{FF44}\u{FF45}@example\u{3002}com', '{hash}')"
    ));
    db.execute("DELETE FROM data_migrations WHERE name = 'normalise_emails_v1'");
    let url = db.url();
    tokio::task::spawn_blocking(move || authd::db::migrations::prepare(&url).unwrap())
        .await
        .unwrap();
    let emails: Vec<(String, String)> = authd::schema::users::table
        .select((authd::schema::users::username, authd::schema::users::email))
        .order(authd::schema::users::id)
        .load(&mut db.connect())
        .unwrap();
    let emails: Vec<(&str, &str)> = emails
        .iter()
        .map(|(name, email)| (name.as_str(), email.as_str()))
        .collect();
    assert_eq!(
        emails,
        [
            ("plain", "dup@example.com"),
            ("hyphen", "dup@ex\u{00AD}ample.com"),
            ("idn", "idn@xn--bcher-kva.example"),
            ("wide", "wide@example.com"),
        ]
    );
    let recorded: i64 = authd::schema::data_migrations::table
        .count()
        .get_result(&mut db.connect())
        .unwrap();
    assert_eq!(recorded, 1, "the data migration is recorded as done");
}
