//! Start-up configuration: the real binary refuses bad settings with a
//! clear message and a non-zero exit.

use std::process::Command;

/// Runs the real binary with `vars` and nothing else from this environment,
/// from a directory without a `.env`.
fn start_with(vars: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_authd"))
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run authd")
}

#[test]
fn a_bad_value_stops_start_up_naming_the_variable() {
    for (name, value) in [
        ("BCRYPT_COST", "3"),
        ("SESSION_TTL", "tomorrow"),
        ("COOKIE_SECURE", "yes"),
        ("BIND", "nowhere"),
        ("SECRET_KEY", "short"),
        ("DATABASE_URL", "mysql://127.0.0.1/authd"),
        ("DATABASE_URL", "postgres://127.0.0.1:5432"),
        ("DATABASE_URL", "postgres://127.0.0.1:5432/authd/"),
        ("DATABASE_URL", "postgres://127.0.0.1:5432/a%00b"),
        ("DATABASE_DIRECT_URL", "127.0.0.1:5432/authd"),
    ] {
        let output = start_with(&[(name, value)]);
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(
            !stderr.contains(value) || name != "SECRET_KEY",
            "the secret is not echoed"
        );
    }
}

#[test]
fn production_refuses_to_start_without_a_secret_key() {
    let output = start_with(&[("AUTHD_ENV", "production")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SECRET_KEY"));
}

#[test]
fn an_unreachable_database_stops_start_up_with_a_clear_message() {
    let output = start_with(&[
        (
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/authd?password=hunter3",
        ),
        ("BCRYPT_COST", "4"),
        ("LOG_FORMAT", "json"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("cannot connect to Postgres"), "{logs}");
    assert!(
        !logs.contains("hunter2") && !logs.contains("hunter3"),
        "the database password is not logged: {logs}"
    );
}
