//! The `authd` command line: the real binary against a fresh database, its
//! output and its exit codes (0 done, 1 refused or not found, 2 usage or
//! configuration).

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, TestDatabase};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `authd args…` against `database`, feeding `stdin`.
pub async fn authd(database: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let (database, stdin) = (database.to_owned(), stdin.to_owned());
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authd"))
            .args(&args)
            .env_clear()
            .env("DATABASE_URL", database)
            .env("BCRYPT_COST", "4")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run authd");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().expect("an exit code, not a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

pub fn assert_code(run: &Run, code: i32) {
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
}

#[tokio::test]
async fn help_and_version_need_no_server_and_no_database() {
    // A database nobody can reach: nothing here may need one.
    let nowhere = "postgres://postgres@127.0.0.1:1/nowhere";
    let help = authd(nowhere, &["--help"], "", &[]).await;
    assert_code(&help, 0);
    for command in ["serve", "migrate", "user", "session"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    for args in [
        &["user", "--help"][..],
        &["user", "create", "--help"],
        &["user", "set-password", "--help"],
        &["session", "revoke", "--help"],
        &["session", "purge", "--help"],
        &["migrate", "--help"],
    ] {
        let run = authd(nowhere, args, "", &[]).await;
        assert_code(&run, 0);
        assert!(run.stdout.contains("Usage"), "{args:?}: {}", run.stdout);
    }
    let version = authd(nowhere, &["--version"], "", &[]).await;
    assert_code(&version, 0);
    assert!(version.stdout.starts_with("authd "), "{}", version.stdout);
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2() {
    let db = TestDatabase::create();
    for args in [
        &["nope"][..],
        &["user"],
        &["user", "create", "only-a-name"],
        &["session", "revoke", "susan"],
        &["session", "revoke", "susan", "abc", "--all"],
    ] {
        let run = authd(&db.url(), args, "", &[]).await;
        assert_code(&run, 2);
        assert!(!run.stderr.is_empty());
    }
    let run = authd(&db.url(), &["user", "list"], "", &[("BCRYPT_COST", "99")]).await;
    assert_code(&run, 2);
    assert!(run.stderr.contains("BCRYPT_COST"), "{}", run.stderr);
    let run = authd(
        "postgres://postgres@127.0.0.1:1/nowhere",
        &["user", "list"],
        "",
        &[],
    )
    .await;
    assert_code(&run, 2);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("Connection refused").count(),
        1,
        "the cause once: {}",
        run.stderr
    );
}

#[tokio::test]
async fn migrate_creates_and_migrates_a_database() {
    let name = format!("authd_test_cli_{}", std::process::id());
    let db = TestDatabase::named(name);
    let run = authd(&db.url(), &["migrate"], "", &[]).await;
    assert_code(&run, 0);
    let again = authd(&db.url(), &["migrate"], "", &[]).await;
    assert_code(&again, 0);
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
}

#[tokio::test]
async fn users_are_created_listed_and_shown_by_the_registration_rules() {
    let db = TestDatabase::create();
    let url = db.url();
    let create = |username: &'static str, email: &'static str, password: &'static str| {
        let url = url.clone();
        async move {
            authd(
                &url,
                &["user", "create", username, email, "--password-stdin"],
                &format!("{password}\n"),
                &[],
            )
            .await
        }
    };
    let created = create("susan", "Susan@Example.COM", PASSWORD).await;
    assert_code(&created, 0);
    assert!(
        created.stdout.contains("created user susan"),
        "{}",
        created.stdout
    );
    let taken = create("SUSAN", "other@example.com", PASSWORD).await;
    assert_code(&taken, 1);
    assert!(
        taken.stderr.contains("Please use a different username."),
        "{}",
        taken.stderr
    );
    let invalid = create("a b", "nope", "password").await;
    assert_code(&invalid, 1);
    for field in ["username:", "email:", "password:"] {
        assert!(
            invalid.stderr.contains(field),
            "{field}: {}",
            invalid.stderr
        );
    }

    let list = authd(&url, &["user", "list"], "", &[]).await;
    assert_code(&list, 0);
    assert!(list.stdout.contains("susan@example.com"), "{}", list.stdout);
    assert_eq!(list.stdout.lines().count(), 2, "a header and one user");
    let show = authd(&url, &["user", "show", "SUSAN"], "", &[]).await;
    assert_code(&show, 0);
    assert!(
        show.stdout.contains("active:        yes"),
        "{}",
        show.stdout
    );
    let missing = authd(&url, &["user", "show", "nobody"], "", &[]).await;
    assert_code(&missing, 1);
    assert!(missing.stderr.contains("no user named nobody"));
    // Without a terminal to prompt at, and no --password-stdin: a clear error.
    let no_tty = authd(&url, &["user", "create", "bob", "bob@example.com"], "", &[]).await;
    assert_code(&no_tty, 2);
    assert!(
        no_tty.stderr.contains("--password-stdin"),
        "{}",
        no_tty.stderr
    );
}

/// The command line acts on what the server serves: passwords, activation
/// and sessions change for its users at once.
#[tokio::test]
async fn operators_manage_passwords_activation_and_sessions() {
    let app = TestApp::spawn().await;
    let url = app.db.url();
    let (first, _) = app.logged_in_app("susan").await;
    let (second, _) = app.app_login("susan", true).await;

    let list = authd(&url, &["session", "list", "susan"], "", &[]).await;
    assert_code(&list, 0);
    assert_eq!(list.stdout.lines().count(), 3, "{}", list.stdout);
    let sessions = first.get("/api/sessions").await.json();
    let second_id = sessions[0]["id"].as_str().unwrap();
    let revoked = authd(&url, &["session", "revoke", "susan", second_id], "", &[]).await;
    assert_code(&revoked, 0);
    second.refused_within_a_second().await;
    first.get("/api/me").await.assert_status(200);
    let again = authd(&url, &["session", "revoke", "susan", second_id], "", &[]).await;
    assert_code(&again, 1);

    let weak = authd(
        &url,
        &["user", "set-password", "susan", "--password-stdin"],
        "password\n",
        &[],
    )
    .await;
    assert_code(&weak, 1);
    assert!(weak.stderr.contains("commonly used"), "{}", weak.stderr);
    let set = authd(
        &url,
        &["user", "set-password", "susan", "--password-stdin"],
        "purple monkey dishwasher\n",
        &[],
    )
    .await;
    assert_code(&set, 0);
    first.refused_within_a_second().await;
    let login = json!({"username": "susan", "password": "purple monkey dishwasher"});
    let fresh = app.browser().post("/api/login", &login).await.login_body();
    let fresh = app.bearer(fresh.token());

    let off = authd(&url, &["user", "deactivate", "susan"], "", &[]).await;
    assert_code(&off, 0);
    fresh.refused_within_a_second().await;
    let browser = app.browser();
    browser.post("/api/login", &login).await.problem(403);
    let on = authd(&url, &["user", "activate", "susan"], "", &[]).await;
    assert_code(&on, 0);
    fresh.get("/api/me").await.problem(401);
    let last = browser.post("/api/login", &login).await.login_body();
    let all = authd(&url, &["session", "revoke", "susan", "--all"], "", &[]).await;
    assert_code(&all, 0);
    assert!(all.stdout.contains("ended 1 session"), "{}", all.stdout);
    app.bearer(last.token()).refused_within_a_second().await;

    let events: Vec<String> = {
        use authd::schema::auth_events::dsl::*;
        use diesel::prelude::*;
        auth_events
            .select(event)
            .load(&mut app.db.connect())
            .unwrap()
    };
    for expected in [
        "password_changed",
        "account_deactivated",
        "account_activated",
        "session_revoked",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:?}"
        );
    }
    assert_code(
        &authd(&url, &["session", "list", "nobody"], "", &[]).await,
        1,
    );
}

#[tokio::test]
async fn purge_deletes_what_is_past_keeping() {
    let app = TestApp::spawn().await;
    let (browser, _) = app.logged_in_browser("susan").await;
    browser
        .request(Method::POST, "/api/logout")
        .csrf()
        .send()
        .await
        .assert_status(204);
    app.app_login("susan", false).await;
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": "wrong-guess-123"}),
        )
        .await
        .problem(401);
    app.db.execute(
        "UPDATE sessions SET revoked_at = now() - interval '100 days' WHERE revoked_at IS NOT NULL",
    );
    app.db.execute(
        "UPDATE auth_events SET at = now() - interval '100 days' WHERE event = 'register'",
    );
    // Past every throttle window (the longest is an hour here).
    app.db
        .execute("UPDATE throttle_hits SET at = now() - interval '2 days'");
    let hits = || -> i64 {
        use diesel::prelude::*;
        authd::schema::throttle_hits::table
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    let aged = hits();
    assert!(aged >= 2, "the failed login was counted");
    let run = authd(&app.db.url(), &["session", "purge"], "", &[]).await;
    assert_code(&run, 0);
    let report = format!("deleted 1 session(s), 1 audit event(s), {aged} throttle count(s)");
    assert!(run.stdout.contains(&report), "{}", run.stdout);
    assert_eq!(hits(), 0);
    let (sessions, events): (i64, i64) = {
        use diesel::prelude::*;
        let mut conn = app.db.connect();
        (
            authd::schema::sessions::table
                .count()
                .get_result(&mut conn)
                .unwrap(),
            authd::schema::auth_events::table
                .count()
                .get_result(&mut conn)
                .unwrap(),
        )
    };
    assert_eq!(sessions, 1, "the live session stays");
    assert!(events >= 3, "recent events stay");
}

/// A backlog of several batches goes, whatever its order: many rows with
/// one timestamp (a batch resumes where the one before stopped, ties
/// included), expired and revoked sessions both, and nothing live.
#[tokio::test]
async fn purge_takes_a_backlog_of_many_batches() {
    let app = TestApp::spawn().await;
    let (susan, _) = app.logged_in_app("susan").await;
    app.db.execute(
        "INSERT INTO auth_events (at, event, user_id) \
         SELECT now() - interval '100 days' + (i % 3) * interval '1 second', 'login_failure', NULL \
         FROM generate_series(1, 2500) AS i",
    );
    app.db.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, remember, \
         csrf_token, public_id, revoked_at) \
         SELECT md5('old' || i) || md5('id' || i), user_id, now() - interval '200 days', now() - interval '200 days', \
         now() - interval '150 days' + (i % 2) * interval '100 days', false, md5('csrf' || i), md5('old' || i), \
         CASE WHEN i % 2 = 1 THEN now() - interval '120 days' END \
         FROM sessions, generate_series(1, 2500) AS i",
    );
    let run = authd(&app.db.url(), &["session", "purge"], "", &[]).await;
    assert_code(&run, 0);
    assert!(
        run.stdout
            .contains("deleted 2500 session(s), 2500 audit event(s)"),
        "{}",
        run.stdout
    );
    let run = authd(&app.db.url(), &["session", "purge"], "", &[]).await;
    assert!(
        run.stdout
            .contains("deleted 0 session(s), 0 audit event(s)"),
        "{}",
        run.stdout
    );
    susan.get("/api/me").await.assert_status(200);
}

/// A name that reads as an option (`--help`, `-rf`) or a hidden file
/// (`.hidden`) is refused by `user create` as by registration; an account
/// made before that, named `-rf`, is still managed, after `--`, and only
/// it; and `session revoke --help` shows that usage.
#[tokio::test]
async fn option_like_usernames_are_refused_and_old_ones_managed_after_dashes() {
    let app = TestApp::spawn().await;
    let url = app.db.url();
    for (n, name) in ["--help", "-rf", ".hidden"].into_iter().enumerate() {
        let email = format!("option{n}@example.com");
        let run = authd(
            &url,
            &["user", "create", "--password-stdin", "--", name, &email],
            &format!("{PASSWORD}\n"),
            &[],
        )
        .await;
        assert_code(&run, 1);
        assert!(
            run.stderr.contains("username:") && run.stderr.contains("not begin with '-' or '.'"),
            "{name}: {}",
            run.stderr
        );
    }

    let (plain, _) = app.logged_in_app("rfx").await;
    let (legacy, _) = app.logged_in_app("legacy").await;
    app.db
        .execute("UPDATE users SET username = '-rf' WHERE username = 'legacy'");
    // Without `--` the name is an option, and nothing happens to anyone.
    assert_code(
        &authd(&url, &["user", "deactivate", "-rf"], "", &[]).await,
        2,
    );
    let revoked = authd(&url, &["session", "revoke", "--all", "--", "-rf"], "", &[]).await;
    assert_code(&revoked, 0);
    assert!(
        revoked.stdout.contains("ended 1 session"),
        "{}",
        revoked.stdout
    );
    legacy.refused_within_a_second().await;
    plain.get("/api/me").await.assert_status(200);
    let off = authd(&url, &["user", "deactivate", "--", "-rf"], "", &[]).await;
    assert_code(&off, 0);
    assert!(off.stdout.contains("-rf is deactivated"), "{}", off.stdout);
    let mut active: Vec<(String, bool)> = {
        use authd::schema::users::dsl::*;
        use diesel::prelude::*;
        users
            .select((username, is_active))
            .load(&mut app.db.connect())
            .unwrap()
    };
    active.sort();
    assert_eq!(active, [("-rf".into(), false), ("rfx".into(), true)]);
    plain.get("/api/me").await.assert_status(200);

    let help = authd(&url, &["session", "revoke", "--help"], "", &[]).await;
    assert_code(&help, 0);
    for usage in [
        "authd session revoke <USERNAME> <SESSION_ID>",
        "authd session revoke --all <USERNAME>",
        "authd session revoke --all -- -olduser",
    ] {
        assert!(help.stdout.contains(usage), "{usage}: {}", help.stdout);
    }
}
