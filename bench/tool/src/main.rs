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
//! - `seed-scale USERS DIR`: the scale benchmark's data, in SQL on the
//!   database server (no row crosses the wire): USERS users, two sessions
//!   each (one live, one ended past `AUDIT_RETENTION`) and ten audit events
//!   each (half past `AUDIT_RETENTION`); then a bearer token for every live
//!   session, written to DIR. Reads authd's own settings from the
//!   environment (`DATABASE_URL`, `SECRET_KEY`, `AUDIT_RETENTION`, …), so
//!   the rows are past keeping by the retention the server will run with.
//! - `lookup ADDRESS BYTES`: the floor: a bare actix-web handler that
//!   verifies a bearer token and reads its session and user from the
//!   database, with authd's pool and query, on every request (settings
//!   from the environment, as for `seed-scale`).
//!
//! A benchmark helper fails loudly: it unwraps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::{App, HttpResponse, HttpServer, web};
use authd::configuration::SecretKey;
use authd::crypto::derive_key;
use authd::db::sessions::{self, Session, SessionRecord};
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
        ["seed-scale", users, dir] => seed_scale(users.parse().unwrap(), dir),
        ["lookup", address, bytes] => lookup(address, bytes.parse().unwrap()),
        _ => {
            eprintln!(
                "usage: authd-bench reference ADDRESS BYTES | bcrypt COST SECONDS | seed DATABASE_URL SECRET_KEY USERS SESSIONS DIR | seed-scale USERS DIR | lookup ADDRESS BYTES"
            );
            std::process::exit(2);
        }
    }
}

/// A JSON object of the requested size: {"pad":"xxxx…"}.
fn padded_body(bytes: usize) -> &'static str {
    Box::leak(format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(10))).into_boxed_str())
}

#[actix_web::main]
async fn reference(address: &str, bytes: usize) {
    let body = padded_body(bytes);
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
            csrf_token: CsrfToken::generate(),
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
        rows.push(SessionRecord {
            session,
            user_agent: Some("authd-bench".into()),
            ip: None,
        });
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

/// The user agent of the seeded sessions and audit events: a browser's, as
/// most are, so that the bytes per row are a real deployment's.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Rows per INSERT … SELECT: a progress line each, and no statement for long.
const CHUNK: i64 = 1_000_000;

fn seed_scale(users: i64, dir: &str) {
    let settings = authd::Settings::from_env().unwrap();
    let mut conn = PgConnection::establish(settings.database.direct_url()).unwrap();
    diesel::sql_query("SET synchronous_commit = off")
        .execute(&mut conn)
        .unwrap();
    // The rows are right by construction: no foreign-key check per row
    // (this takes a superuser, as the benchmark's Postgres role is; without
    // one the checks run, slower).
    if diesel::sql_query("SET session_replication_role = replica")
        .execute(&mut conn)
        .is_err()
    {
        eprintln!("seed-scale: not a superuser: foreign keys are checked row by row");
    }
    // As pg_restore does: indexes built once after the rows, by sorting,
    // rather than grown row by row (a few times faster). Those behind
    // constraints (primary keys, `sessions.public_id`) stay.
    let indexes = droppable_indexes(&mut conn);
    let keep = settings.retention.audit_retention.std().as_secs();
    assert!(
        keep >= 2 * 86_400,
        "AUDIT_RETENTION must be at least 2 days"
    );
    // Tokens, CSRF tokens and public ids are digests of a random salt and
    // the row's number: unguessable, and made where the rows are.
    let salt = authd::crypto::random_token();
    let credential = |kind: &str| {
        format!(
            "translate(rtrim(encode(sha256(convert_to('{salt}{kind}' || i, 'UTF8')), 'base64'), '='), '+/', '-_')"
        )
    };
    let ip = "('10.' || i / 65536 % 256 || '.' || i / 256 % 256 || '.' || i % 256)::inet";
    let now = format!("'{}'::timestamptz", Utc::now().to_rfc3339());
    let second = "interval '1 second'";
    let hash = bcrypt::hash(PASSWORD, 12).unwrap();
    let mut took = serde_json::Map::new();

    took.insert(
        "users".into(),
        in_chunks(&mut conn, "users", users, |lo, hi| {
            format!(
                "INSERT INTO users (username, email, password_hash, created_at, last_login_at, email_verified_at)
                 SELECT 'bench' || i, 'bench' || i || '@example.com', '{hash}', created,
                        {now} - i % 86400 * {second}, created
                 FROM (SELECT i, {now} - interval '1 day' - i % 31536000 * {second} AS created
                       FROM generate_series({lo}, {hi} - 1) AS i) AS seeded"
            )
        })
        .into(),
    );
    // Row i's user is the first id plus i modulo USERS: the identity
    // column numbers one fresh table's rows without gaps.
    let (first, last): (Option<i64>, Option<i64>) = authd::schema::users::table
        .select((
            diesel::dsl::min(authd::schema::users::id),
            diesel::dsl::max(authd::schema::users::id),
        ))
        .first(&mut conn)
        .unwrap();
    let first = first.unwrap();
    assert_eq!(
        last.unwrap() - first + 1,
        users,
        "seed-scale needs an empty users table"
    );

    // In the order they began, as a table fills: sessions 0..USERS ended
    // (half revoked, all expired) a month before the retention's edge; the
    // rest are live (remembered, seen in the last half hour).
    took.insert(
        "sessions".into(),
        in_chunks(&mut conn, "sessions", 2 * users, |lo, hi| {
            format!(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember,
                                       user_agent, ip, csrf_token, revoked_at, public_id)
                 SELECT {token}, {first} + i % {users}, created,
                        CASE WHEN live THEN {now} - i % 1800 * {second} ELSE created + interval '1 hour' END,
                        created + interval '30 days', true, '{BROWSER}', {ip}, {csrf},
                        CASE WHEN NOT live AND i % 2 = 0 THEN created + interval '1 day' END,
                        md5('{salt}p' || i)
                 FROM (SELECT i, i >= {users} AS live,
                              CASE WHEN i >= {users} THEN {now} - interval '1 hour' - i % 1728000 * {second}
                                   ELSE {now} - {keep} * {second} - interval '31 days' - i % 25920000 * {second}
                              END AS created
                       FROM generate_series({lo}, {hi} - 1) AS i) AS seeded",
                token = credential("s"),
                csrf = credential("c"),
            )
        })
        .into(),
    );

    // Ten events a user, in the order they happened: the first half spread
    // over the year before the retention's edge, the second over the
    // retention period up to a day from its edge.
    let half = 5 * users;
    let old_step = 365.0 * 86_400.0 / half as f64;
    let new_step = (keep - 86_400) as f64 / half as f64;
    took.insert(
        "auth_events".into(),
        in_chunks(&mut conn, "audit events", 2 * half, |lo, hi| {
            format!(
                "INSERT INTO auth_events (at, event, user_id, identifier, ip, user_agent)
                 SELECT CASE WHEN i < {half}
                             THEN {now} - {keep} * {second} - interval '366 days' + i * {old_step} * {second}
                             ELSE {now} - {keep} * {second} + interval '1 day' + (i - {half}) * {new_step} * {second}
                        END,
                        (ARRAY['login_success', 'login_success', 'login_success', 'logout',
                               'login_failure', 'session_revoked', 'register', 'password_changed'])[1 + i % 8],
                        {first} + i % {users}, 'bench' || i % {users}, {ip}, '{BROWSER}'
                 FROM generate_series({lo}, {hi} - 1) AS i"
            )
        })
        .into(),
    );

    let started = Instant::now();
    for definition in &indexes {
        diesel::sql_query(definition).execute(&mut conn).unwrap();
    }
    took.insert("indexes".into(), started.elapsed().as_secs_f64().into());

    // As autovacuum would leave them, and before the benchmark rather than
    // during it.
    let started = Instant::now();
    diesel::sql_query("VACUUM (ANALYZE) users, sessions, auth_events")
        .execute(&mut conn)
        .unwrap();
    took.insert("vacuum".into(), started.elapsed().as_secs_f64().into());

    let started = Instant::now();
    let live = bearer_tokens(&mut conn, &settings, dir);
    let users_lines: String = (0..users).map(|n| format!("bench{n}\n")).collect();
    std::fs::write(format!("{dir}/users.txt"), users_lines).unwrap();
    took.insert("tokens".into(), started.elapsed().as_secs_f64().into());

    println!(
        "{}",
        serde_json::json!({
            "seconds": took,
            "live_sessions": live,
            "cache_capacity": settings.sessions.cache_capacity,
            "pool_size": settings.database.pool_size,
            "audit_retention_s": keep,
        })
    );
}

/// Drops the indexes of the seeded tables that no constraint owns; their
/// definitions, to create them again.
fn droppable_indexes(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        definition: String,
    }
    let indexes: Vec<Index> = diesel::sql_query(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
         FROM pg_index i
         WHERE i.indrelid IN ('users'::regclass, 'sessions'::regclass, 'auth_events'::regclass)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
    )
    .load(conn)
    .unwrap();
    for index in &indexes {
        diesel::sql_query(format!("DROP INDEX {}", index.name))
            .execute(conn)
            .unwrap();
    }
    indexes.into_iter().map(|index| index.definition).collect()
}

/// Runs the INSERT … SELECT that `insert(lo, hi)` makes for rows lo..hi,
/// CHUNK rows at a time; the seconds it took.
fn in_chunks(
    conn: &mut PgConnection,
    what: &str,
    rows: i64,
    insert: impl Fn(i64, i64) -> String,
) -> f64 {
    let started = Instant::now();
    for lo in (0..rows).step_by(usize::try_from(CHUNK).unwrap()) {
        let hi = (lo + CHUNK).min(rows);
        diesel::sql_query(insert(lo, hi)).execute(conn).unwrap();
        eprintln!(
            "seed-scale: {what}: {hi} of {rows} after {:.1?}",
            started.elapsed()
        );
    }
    started.elapsed().as_secs_f64()
}

/// A bearer token for every live session, one a line in DIR/tokens.txt, in
/// the order of their users; how many.
fn bearer_tokens(conn: &mut PgConnection, settings: &authd::Settings, dir: &str) -> usize {
    use authd::schema::sessions as s;
    let now = Utc::now();
    let live: Vec<(
        SessionToken,
        UserId,
        chrono::DateTime<Utc>,
        chrono::DateTime<Utc>,
    )> = s::table
        .filter(s::revoked_at.is_null())
        .filter(s::expires_at.gt(now))
        .order(s::user_id)
        .select((s::id, s::user_id, s::created_at, s::expires_at))
        .load(conn)
        .unwrap();
    let keys = TokenKeys::derive(&settings.secrets.key, None);
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(format!("{dir}/tokens.txt")).unwrap());
    for (token, user_id, created_at, expires_at) in &live {
        // Only what the token carries matters: its session id, user and times.
        let session = Session {
            token: token.clone(),
            user_id: *user_id,
            created_at: *created_at,
            last_seen_at: *created_at,
            expires_at: *expires_at,
            remember: true,
            csrf_token: CsrfToken::generate(),
            id: SessionId::parse(&format!("{:032x}", 0)).unwrap(),
            amr: Vec::new(),
        };
        writeln!(out, "{}", keys.issue(&session).unwrap()).unwrap();
    }
    out.flush().unwrap();
    live.len()
}

/// The floor's state: authd's pool and token keys, its idle timeout, and the
/// body to answer.
struct Floor {
    pool: authd::db::PgPool,
    keys: TokenKeys,
    idle: TimeDelta,
    body: &'static str,
}

#[actix_web::main]
async fn lookup(address: &str, bytes: usize) {
    let settings = authd::Settings::from_env().unwrap();
    let size = settings.database.pool_size;
    let floor = web::Data::new(Floor {
        pool: authd::startup::services::pool(&settings, size, size),
        keys: TokenKeys::derive(&settings.secrets.key, None),
        idle: settings.sessions.idle_ttl.delta(),
        body: padded_body(bytes),
    });
    HttpServer::new(move || {
        App::new()
            .app_data(floor.clone())
            .route("/readyz", web::get().to(HttpResponse::Ok))
            .default_service(web::to(one_lookup))
    })
    .bind(address)
    .unwrap()
    .run()
    .await
    .unwrap();
}

/// One database read per request: the bearer token's live session and its
/// user, as authd reads a lone cache miss (under load it reads several
/// misses at a time).
async fn one_lookup(request: actix_web::HttpRequest, floor: web::Data<Floor>) -> HttpResponse {
    let claims = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| floor.keys.verify(token));
    let Some(claims) = claims else {
        return HttpResponse::Unauthorized().finish();
    };
    let token = SessionToken::presented(claims.sid);
    let now = Utc::now();
    let idle_since = now - floor.idle;
    let found = authd::db::run(&floor.pool, move |conn| {
        sessions::find_live_with_user(conn, &token, now, idle_since)
    })
    .await;
    match found {
        Ok(Some(_)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(floor.body),
        Ok(None) => HttpResponse::Unauthorized().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}
