//! What a crash leaves behind: the real binary, killed with SIGKILL in the
//! middle of work, must leave no change without its audit record.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::{PASSWORD, TestDatabase};

/// The built `authd` binary, serving `db` on a free port of its own.
pub struct Process {
    pub child: Child,
    pub address: String,
}

impl Process {
    pub async fn start(db: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
        command
            .env_clear()
            .env("DATABASE_URL", db.url())
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SECRET_KEY", "durability-test-secret-key-".repeat(3))
            .env("COOKIE_SECURE", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the authd binary");
        let process = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", process.address))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "authd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registrations in flight when the process is killed: every acknowledged
/// user, and every user in the table, has its `register` event. The audit
/// table is locked while eight registrations run, so each stops exactly
/// between its account and its event; then the process dies.
#[tokio::test]
async fn a_crash_never_leaves_an_account_without_its_register_event() {
    let db = tokio::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    let settings = [("BCRYPT_COST", "6"), ("REGISTRATIONS_PER_IP", "1000")];

    // Caught between the account and its event.
    let mut process = Process::start(&db, &settings).await;
    let mut lock = db.connect();
    diesel::sql_query("BEGIN").execute(&mut lock).unwrap();
    diesel::sql_query("LOCK TABLE auth_events IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut lock)
        .unwrap();
    for n in 0..8 {
        let url = format!("{}/api/register", process.address);
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .json(&registration(&format!("stuck{n}")))
                .send()
                .await;
        });
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while waiting_on_locks(&db) < 8 {
        assert!(
            Instant::now() < deadline,
            "the registrations never reached the audit table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();

    // Killed as soon as the first of eight is acknowledged.
    let mut acknowledged = BTreeSet::new();
    let mut process = Process::start(&db, &settings).await;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..8 {
        let (url, sender) = (format!("{}/api/register", process.address), sender.clone());
        tokio::spawn(async move {
            let name = format!("crash{n}");
            let sent = reqwest::Client::new()
                .post(url)
                .json(&registration(&name))
                .send()
                .await;
            if sent.is_ok_and(|response| response.status() == 201) {
                let _ = sender.send(name);
            }
        });
    }
    drop(sender);
    if let Some(first) = receiver.recv().await {
        acknowledged.insert(first);
    }
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    while let Some(name) = receiver.recv().await {
        acknowledged.insert(name);
    }

    let mut conn = db.connect();
    let users: BTreeSet<String> = authd::schema::users::table
        .select(authd::schema::users::username)
        .load(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    let recorded: BTreeSet<String> = authd::schema::auth_events::table
        .inner_join(authd::schema::users::table)
        .filter(authd::schema::auth_events::event.eq("register"))
        .select(authd::schema::users::username)
        .load(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    assert!(!acknowledged.is_empty(), "no registration was acknowledged");
    assert!(
        acknowledged.is_subset(&users),
        "{acknowledged:?} vs {users:?}"
    );
    assert_eq!(users, recorded, "users without their register event");
}

fn registration(name: &str) -> serde_json::Value {
    json!({"username": name, "email": format!("{name}@example.com"),
           "password": PASSWORD, "password2": PASSWORD})
}

/// Sessions of `db` waiting for a lock.
fn waiting_on_locks(db: &TestDatabase) -> i64 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "(SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock')",
        db.name
    )))
    .get_result(&mut db.connect())
    .unwrap()
}
