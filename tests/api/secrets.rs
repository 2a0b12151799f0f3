//! What a debugger, a `{:?}` in a log line or an error report can print of
//! a real login: never a credential, a CSRF token or a password hash; at
//! most their first four characters, the rule `domain::ids` sets.

use diesel::prelude::*;
use secrecy::SecretString;

use crate::helpers::{PASSWORD, TestApp};
use authd::db::DbError;
use authd::domain::{FieldErrors, MfaToken, Owner, Password};
use authd::services::accounts::{AccountError, ProfileChange};
use authd::services::login::{Factors, LoginError};
use authd::{ApiError, LiveSession, Session, User};

/// The longest run of a secret's characters that may print.
const PREFIX: usize = 4;

/// Asserts that `shown` holds no run of more than [`PREFIX`] characters of
/// any secret.
#[track_caller]
fn assert_hides(what: &str, shown: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        let chars: Vec<char> = secret.chars().collect();
        for run in chars.windows(PREFIX + 1) {
            let run: String = run.iter().collect();
            assert!(
                !shown.contains(&run),
                "{what} shows part of the {name} ({run:?}): {shown}"
            );
        }
    }
}

/// A session and its user as the database has them after a browser's login,
/// and the tokens that login answered.
async fn logged_in() -> (TestApp, User, Session, serde_json::Value) {
    let app = TestApp::spawn().await;
    let (_, login) = app.logged_in_browser("susan").await;
    let mut conn = app.db.connect();
    let user = authd::db::users::find_by_username(&mut conn, "susan")
        .unwrap()
        .unwrap();
    let session = authd::schema::sessions::table
        .select(Session::as_select())
        .first(&mut conn)
        .unwrap();
    (app, user, session, login.0)
}

#[tokio::test]
async fn users_sessions_and_their_credentials_never_print() {
    let (_app, user, session, login) = logged_in().await;
    let secrets = [
        ("session token", session.token.expose()),
        ("CSRF token", session.csrf_token.expose()),
        ("password hash", user.password_hash.expose()),
        ("access token", login["access_token"].as_str().unwrap()),
        ("password", PASSWORD),
    ];
    // The login's tokens are the row's: what is checked below is the real
    // thing.
    assert_eq!(login["csrf_token"], session.csrf_token.expose());

    let (token, csrf, hash) = (&session.token, &session.csrf_token, &user.password_hash);
    for (what, shown) in [
        ("SessionToken", format!("{token:?} {token}")),
        ("CsrfToken", format!("{csrf:?} {csrf}")),
        ("PasswordHash", format!("{hash:?} {hash}")),
        ("SessionId", format!("{:?} {}", session.id, session.id)),
        ("UserId", format!("{:?} {}", user.id, user.id)),
        ("User", format!("{user:?} {user:#?}")),
        ("Session", format!("{session:?} {session:#?}")),
    ] {
        assert_hides(what, &shown, &secrets);
    }
    let live = LiveSession {
        session: session.clone(),
        user: user.clone(),
    };
    assert_hides("LiveSession", &format!("{live:?} {live:#?}"), &secrets);

    let password = Password::parse(
        PASSWORD,
        Owner {
            username: Some("susan"),
            email: None,
        },
    )
    .unwrap();
    assert_hides("Password", &format!("{password:?}"), &secrets);
    let change = ProfileChange {
        username: None,
        email: None,
        errors: FieldErrors::new(),
        current_password: SecretString::from(PASSWORD),
        code: Some(SecretString::from("7k2m-9qzd-x4tb-hw3e-c8va-r5np")),
    };
    assert_hides("ProfileChange", &format!("{change:?}"), &secrets);
    assert!(
        !format!("{change:?}").contains("9qzd"),
        "ProfileChange shows the recovery code"
    );
}

/// The token a login owing a second step answers with stands for the
/// password that was right: neither it nor the errors that carry it print
/// it.
#[test]
fn an_mfa_token_never_prints() {
    let token = MfaToken::generate();
    let secrets = [("mfa token", token.expose())];
    assert_hides(
        "MfaToken",
        &format!("{token:?} {token} {token:#?}"),
        &secrets,
    );
    for error in [
        LoginError::MfaRequired(
            token.clone(),
            Factors {
                totp: true,
                passkey: true,
            },
        ),
        LoginError::MfaEnrollmentRequired(token.clone()),
    ] {
        assert_hides(
            "LoginError",
            &format!("{error:?} {error} {error:#?}"),
            &secrets,
        );
    }
}

/// A database error about a session row holds its credential (Postgres
/// names the duplicate key); no error it becomes prints it.
#[tokio::test]
async fn errors_about_a_session_never_print_its_credential() {
    let (app, _, session, _) = logged_in().await;
    let secrets = [("session token", session.token.expose())];
    let mut conn = app.db.connect();
    let mut duplicate = || {
        let record = authd::db::sessions::SessionRecord {
            session: session.clone(),
            user_agent: None,
            ip: None,
        };
        let error = authd::db::sessions::insert(&mut conn, &record).unwrap_err();
        let diesel::result::Error::DatabaseError(_, info) = &error else {
            panic!("not a database error: {error:?}");
        };
        assert!(
            info.details()
                .is_some_and(|details| details.contains(session.token.expose())),
            "the error does not hold the credential: {:?}",
            info.details()
        );
        DbError::from(error)
    };

    let db = duplicate();
    assert_hides("DbError", &format!("{db:?} {db} {db:#}"), &secrets);
    let login = LoginError::Db(duplicate());
    assert_hides("LoginError", &format!("{login:?} {login}"), &secrets);
    let account = AccountError::Db(duplicate());
    assert_hides("AccountError", &format!("{account:?} {account}"), &secrets);
    let api = ApiError::from(duplicate());
    assert_hides("ApiError", &format!("{api:?} {api} {api:#}"), &secrets);
}
