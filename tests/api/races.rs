//! Logins in flight while the credential they checked changes. A login
//! checks the password against the hash it read, then makes the session; a
//! password change, a reset, a deactivation, a deletion or an operator's
//! removal of the second factor committed in between must not leave a
//! session (or a second step) behind that the old credential opened, nor
//! fail the login with anything but its normal refusal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

use crate::cli::{assert_code, authd};
use crate::helpers::mail_sink::MailSink;
use crate::helpers::{Login, PASSWORD, TestApp, TestResponse};
use crate::mfa::{mfa_user, recovery_step};
use crate::recovery::{NEW, RESET, delivered, forgot, mailing, reset};
use authd::configuration::{Bucket, Settings};

/// Clients logging in at once, each again as soon as it is answered: enough
/// that some are between their password check and their session whenever
/// the change commits.
const CLIENTS: usize = 8;
/// How long they log in before the change, and on after it.
const AROUND: Duration = Duration::from_millis(200);

/// The failures the old password earns after the change would soon reach
/// the login throttle, which is not what these tests are about.
fn unthrottled(settings: &mut Settings) {
    settings.throttle.set_limit(Bucket::LoginAccount, 100_000);
    settings.throttle.set_limit(Bucket::LoginIp, 100_000);
}

/// Every answer to `susan` logging in with [`PASSWORD`] from [`CLIENTS`]
/// clients, from [`AROUND`] before `change` starts until [`AROUND`] after
/// it has finished.
async fn logins_racing(app: &TestApp, change: impl Future<Output = ()>) -> Vec<TestResponse> {
    let stop = &AtomicBool::new(false);
    let answered = &AtomicUsize::new(0);
    let client = |_| async move {
        let client = app.anonymous();
        let mut responses = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            responses.push(client.login("susan", false).await);
            answered.fetch_add(1, Ordering::Relaxed);
        }
        responses
    };
    let clients = futures_util::future::join_all((0..CLIENTS).map(client));
    let change = async {
        // Some logins answered before the change, however loaded the machine.
        tokio::time::sleep(AROUND).await;
        while answered.load(Ordering::Relaxed) < CLIENTS {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        change.await;
        tokio::time::sleep(AROUND).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (responses, ()) = tokio::join!(clients, change);
    responses.into_iter().flatten().collect()
}

/// Asserts that each login was let in or got `refused`, the answer the
/// change brings (never a 5xx), and that both happened, so the logins did
/// straddle the change; what those let in were given.
fn answers(responses: &[TestResponse], refused: u16) -> Vec<Login> {
    let mut statuses = BTreeMap::<u16, usize>::new();
    for response in responses {
        *statuses.entry(response.status.as_u16()).or_default() += 1;
    }
    let unexpected: Vec<_> = responses
        .iter()
        .filter(|r| r.status != 200 && r.status != refused)
        .map(|r| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "statuses {statuses:?}; unexpected: {unexpected:#?}"
    );
    for response in responses.iter().filter(|r| r.status == refused) {
        response.problem(refused);
    }
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&refused),
        "the logins did not straddle the change: {statuses:?}"
    );
    responses
        .iter()
        .filter(|r| r.status == 200)
        .map(TestResponse::login_body)
        .collect()
}

/// Asserts that none of these sessions is unrevoked in the database (found
/// by their CSRF tokens: the access token is not the row's key).
fn assert_none_stored_live(app: &TestApp, logins: &[Login]) {
    use authd::schema::sessions::dsl::*;
    let csrf: Vec<&str> = logins.iter().map(Login::csrf).collect();
    let live: i64 = sessions
        .filter(csrf_token.eq_any(&csrf))
        .filter(revoked_at.is_null())
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(
        live,
        0,
        "{live} of the {} sessions the old password opened are not revoked",
        logins.len()
    );
}

/// Asserts that `GET /api/me` refuses the token of every one of these.
async fn assert_none_accepted(app: &TestApp, logins: &[Login]) {
    let client = app.anonymous();
    let accepted = futures_util::stream::iter(logins)
        .map(|login| {
            client
                .request(Method::GET, "/api/me")
                .header("authorization", &login.bearer())
                .send()
        })
        .buffer_unordered(CLIENTS)
        .filter(|response| std::future::ready(response.status != 401))
        .count()
        .await;
    assert_eq!(
        accepted,
        0,
        "{accepted} of the {} sessions the old password opened still work",
        logins.len()
    );
}

#[tokio::test]
async fn logins_racing_a_password_change_leave_no_session_with_the_old_password() {
    let app = TestApp::spawn_with(unthrottled).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let change = json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW});
    let responses = logins_racing(&app, async {
        susan
            .post("/api/me/password", &change)
            .await
            .assert_status(204);
    })
    .await;
    let logins = answers(&responses, 401);
    assert_none_stored_live(&app, &logins);
    assert_none_accepted(&app, &logins).await;
    // The session that changed it is kept, as a change promises.
    susan.get("/api/me").await.assert_status(200);
}

#[tokio::test]
async fn logins_racing_a_password_reset_leave_no_session_with_the_old_password() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        unthrottled(settings);
    })
    .await;
    app.user("susan").await;
    forgot(&app, "susan@example.com").await.assert_status(202);
    let link = delivered(&app, &sink, "susan@example.com", RESET, 1).await[0].token();
    let responses = logins_racing(&app, async {
        reset(&app, &link, NEW).await.assert_status(204);
    })
    .await;
    let logins = answers(&responses, 401);
    assert_none_stored_live(&app, &logins);
    assert_none_accepted(&app, &logins).await;
}

/// A session of a disabled account is refused anyway; it would come back
/// with the account, were it not revoked.
#[tokio::test]
async fn logins_racing_a_deactivation_leave_no_session_to_come_back() {
    let app = TestApp::spawn_with(unthrottled).await;
    app.user("susan").await;
    let url = app.db.url();
    let responses = logins_racing(&app, async {
        assert_code(
            &authd(&url, &["user", "deactivate", "susan"], "", &[]).await,
            0,
        );
    })
    .await;
    // The right password for a disabled account is 403, not 401.
    let logins = answers(&responses, 403);
    assert_none_stored_live(&app, &logins);
    assert_code(
        &authd(&url, &["user", "activate", "susan"], "", &[]).await,
        0,
    );
    assert_none_accepted(&app, &logins).await;
}

/// Before the operator's reset a right password owes a second step; after
/// it, it logs in. No second step owed to the removed factor survives it,
/// whenever it was made.
#[tokio::test]
async fn logins_racing_an_mfa_reset_leave_no_second_step_behind() {
    let app = TestApp::spawn_with(unthrottled).await;
    let (_, _, codes) = mfa_user(&app, "susan").await;
    let url = app.db.url();
    let responses = logins_racing(&app, async {
        assert_code(
            &authd(&url, &["user", "mfa-reset", "susan"], "", &[]).await,
            0,
        );
    })
    .await;
    answers(&responses, 401);
    let client = app.anonymous();
    for owed in responses.iter().filter(|r| r.status == 401) {
        let token = owed.json()["mfa_token"].as_str().unwrap().to_owned();
        let step = recovery_step(&client, &token, &codes[1]).await.problem(401);
        assert_eq!(step["type"], "urn:authd:problem:mfa-expired");
    }
}

/// A login whose account is deleted under it is an ordinary failed login,
/// not a 500 from a session that names a user no longer there.
#[tokio::test]
async fn logins_racing_a_deletion_are_refused_as_usual() {
    let app = TestApp::spawn_with(unthrottled).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let responses = logins_racing(&app, async {
        susan
            .request(Method::DELETE, "/api/me")
            .json(&json!({"current_password": PASSWORD}))
            .send()
            .await
            .assert_status(204);
    })
    .await;
    let logins = answers(&responses, 401);
    assert_none_accepted(&app, &logins).await;
}
