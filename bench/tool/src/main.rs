//! The load benchmark's helpers (`bench/run` drives them):
//!
//! - `reference ADDRESS BYTES`: a bare actix-web server answering every GET
//!   with a static JSON body of that size: the framework's ceiling.
//! - `bcrypt COST SECONDS`: bcrypt verifies at COST on every core for that
//!   long: the login ceiling, in verifies per second.
//! - `seed DATABASE_URL SECRET_KEY USERS SESSIONS DIR`: users (one shared
//!   hash at the default cost, password `bench-password`) and sessions
//!   straight into a migrated database, with a bearer token and a session
//!   cookie minted for each session, written to DIR.
//!
//! A benchmark helper fails loudly: it unwraps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::{App, HttpResponse, HttpServer, web};
use authd::configuration::SecretKey;
use authd::crypto::derive_key;
use authd::db::sessions::{self, Session};
use authd::domain::{CsrfToken, SessionId, SessionToken, UserId};
use authd::http::auth::token::TokenKeys;
use chrono::{TimeDelta, Utc};
use diesel::prelude::*;

pub const PASSWORD: &str = "bench-password";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["reference", address, bytes] => reference(address, bytes.parse().unwrap()),
        ["bcrypt", cost, seconds] => {
            bcrypt_ceiling(cost.parse().unwrap(), seconds.parse().unwrap())
        }
        ["seed", url, secret, users, sessions, dir] => seed(
            url,
            secret,
            users.parse().unwrap(),
            sessions.parse().unwrap(),
            dir,
        ),
        _ => {
            eprintln!(
                "usage: authd-bench reference ADDRESS BYTES | bcrypt COST SECONDS | seed DATABASE_URL SECRET_KEY USERS SESSIONS DIR"
            );
            std::process::exit(2);
        }
    }
}

#[actix_web::main]
async fn reference(address: &str, bytes: usize) {
    // A JSON object of the requested size: {"pad":"xxxx…"}.
    let body: &'static str = Box::leak(
        format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(10))).into_boxed_str(),
    );
    HttpServer::new(move || {
        App::new().default_service(web::to(move || async move {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }))
    })
    .bind(address)
    .unwrap()
    .run()
    .await
    .unwrap();
}

fn bcrypt_ceiling(cost: u32, seconds: u64) {
    let hash = bcrypt::hash(PASSWORD, cost).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let verifies: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = 0;
                    while Instant::now() < deadline {
                        assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"cores\":{cores},\"cost\":{cost},\"verifies_per_second\":{:.3},\"seconds_per_verify\":{:.4}}}",
        verifies as f64 / elapsed,
        elapsed * cores as f64 / verifies as f64
    );
}

fn seed(url: &str, secret: &str, users: usize, sessions: usize, dir: &str) {
    let mut conn = PgConnection::establish(url).unwrap();
    let hash = bcrypt::hash(PASSWORD, 12).unwrap();
    let started = Instant::now();
    for chunk in (0..users).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| format!("('bench{n}', 'bench{n}@example.com', '{hash}')"))
            .collect();
        diesel::sql_query(format!(
            "INSERT INTO users (username, email, password_hash) VALUES {}",
            values.join(", ")
        ))
        .execute(&mut conn)
        .unwrap();
    }
    let ids: Vec<UserId> = authd::schema::users::table
        .select(authd::schema::users::id)
        .order(authd::schema::users::id)
        .limit(i64::try_from(users).unwrap())
        .load(&mut conn)
        .unwrap();

    let secret = SecretKey::new(secret.as_bytes().to_vec()).unwrap();
    let tokens = TokenKeys::derive(&secret, None);
    let cookie_key = Key::from(&derive_key::<64>(
        secret.expose(),
        "authd session cookie v1",
    ));
    let now = Utc::now();
    let mut token_lines = String::new();
    let mut cookie_lines = String::new();
    let mut rows = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let session = Session {
            token: SessionToken::generate(),
            user_id: ids[n % ids.len()],
            created_at: now,
            last_seen_at: now,
            expires_at: now + TimeDelta::days(30),
            remember: true,
            user_agent: Some("authd-bench".into()),
            ip: None,
            csrf_token: CsrfToken::generate(),
            revoked_at: None,
            id: SessionId::parse(&format!("{n:032x}")).unwrap(),
            amr: vec![Some("pwd".into())],
        };
        token_lines.push_str(&tokens.issue(&session).unwrap());
        token_lines.push('\n');
        // As actix-identity and actix-session store it: a JSON map, sealed.
        let state = serde_json::json!({ "actix_identity.user_id": serde_json::to_string(session.token.expose()).unwrap() });
        let mut jar = CookieJar::new();
        jar.private_mut(&cookie_key)
            .add(Cookie::new("authd_session", state.to_string()));
        let sealed = jar.get("authd_session").unwrap().encoded().to_string();
        cookie_lines.push_str(sealed.trim_start_matches("authd_session="));
        cookie_lines.push('\n');
        rows.push(session);
    }
    for chunk in rows.chunks(1000) {
        conn.transaction(|conn| {
            for session in chunk {
                sessions::insert(conn, session)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
    }
    let users_lines: String = (0..users).map(|n| format!("bench{n}\n")).collect();
    for (name, text) in [
        ("tokens.txt", token_lines),
        ("cookies.txt", cookie_lines),
        ("users.txt", users_lines),
    ] {
        std::fs::File::create(format!("{dir}/{name}"))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    eprintln!(
        "seeded {users} users and {sessions} sessions in {:?}",
        started.elapsed()
    );
}
