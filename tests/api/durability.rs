//! What a crash leaves behind: the real binary, killed with SIGKILL in the
//! middle of work, must leave no change without its audit record.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Process, TestDatabase};

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
        let request = process
            .server()
            .anonymous()
            .request(Method::POST, "/api/register")
            .json(&registration(&format!("stuck{n}")));
        tokio::spawn(request.try_send());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while waiting_on_locks(&db) < 8 {
        assert!(
            Instant::now() < deadline,
            "the registrations never reached the audit table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.kill();
    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();

    // Killed as soon as the first of eight is acknowledged.
    let mut acknowledged = BTreeSet::new();
    let mut process = Process::start(&db, &settings).await;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..8 {
        let (anonymous, sender) = (process.server().anonymous(), sender.clone());
        tokio::spawn(async move {
            let name = format!("crash{n}");
            let sent = anonymous
                .request(Method::POST, "/api/register")
                .json(&registration(&name))
                .try_send()
                .await;
            if sent.is_ok_and(|response| response.status == 201) {
                let _ = sender.send(name);
            }
        });
    }
    drop(sender);
    if let Some(first) = receiver.recv().await {
        acknowledged.insert(first);
    }
    process.kill();
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

/// How many registrations are acknowledged before the storm's crash.
const STORM: usize = 24;

/// Killed with SIGKILL in a storm of registrations and logins: after a
/// restart every user that got a 201 exists and can log in, and no user or
/// session is half made (each has the audit event written with it).
#[tokio::test]
async fn a_crash_in_a_storm_loses_no_acknowledged_account() {
    let db = tokio::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    let settings = [("BCRYPT_COST", "6"), ("REGISTRATIONS_PER_IP", "100000")];
    let mut process = Process::start(&db, &settings).await;
    let anonymous = process.server().anonymous();
    for n in 0..4 {
        let sent = anonymous
            .post("/api/register", &registration(&format!("early{n}")))
            .await;
        assert_eq!(sent.status, 201);
    }
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    for worker in 0..8 {
        let (anonymous, sender) = (anonymous.clone(), sender.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let name = format!("storm{worker}x{n}");
                let registered = anonymous
                    .request(Method::POST, "/api/register")
                    .json(&registration(&name))
                    .try_send()
                    .await;
                match registered {
                    Ok(response) if response.status == 201 => {
                        let _ = sender.send(name);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
                let login = json!({"username": format!("early{}", n % 4), "password": PASSWORD});
                if anonymous
                    .request(Method::POST, "/api/login")
                    .json(&login)
                    .try_send()
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    drop(sender);
    // Killed in full storm: once a few dozen registrations are
    // acknowledged, with more of them and of the logins in flight.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < STORM {
        let name = tokio::time::timeout(Duration::from_secs(15), receiver.recv())
            .await
            .expect("the storm registers users")
            .expect("the storm is still on");
        acknowledged.push(name);
    }
    process.kill();
    while let Some(name) = receiver.recv().await {
        acknowledged.push(name);
    }
    assert!(acknowledged.len() > 4, "the storm did register users");

    let restarted = Process::start(&db, &settings).await;
    let anonymous = restarted.server().anonymous();
    for name in &acknowledged {
        let login = json!({"username": name, "password": PASSWORD});
        let answer = anonymous.post("/api/login", &login).await;
        assert_eq!(answer.status, 200, "{name} was acknowledged");
    }
    let mut conn = db.connect();
    let half_made: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM users u WHERE NOT EXISTS \
           (SELECT 1 FROM auth_events e WHERE e.user_id = u.id AND e.event = 'register')) \
         + (SELECT count(*) FROM users u WHERE \
           (SELECT count(*) FROM sessions s WHERE s.user_id = u.id) \
           <> (SELECT count(*) FROM auth_events e WHERE e.user_id = u.id AND e.event = 'login_success'))",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(half_made, 0, "users or sessions without their audit event");
}
