//! `authd user mfa-reset`: an operator removes a lost factor, for an owner
//! who proved who they are some other way (ASVS 6.4.4).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::json;

use super::{count, events, first_step, me, mfa_user, recovery_step};
use crate::cli::{assert_code, authd};
use crate::helpers::TestApp;
use crate::helpers::mail_sink::MailSink;
use crate::recovery::{delivered, mailing};

const RESET_NOTICE: &str = "Your second factor was removed by an administrator";

#[tokio::test]
async fn the_reset_removes_the_factor_ends_the_sessions_and_tells_the_owner() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(mailing(&sink)).await;
    let (susan, _, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let owed = first_step(&client, "susan").await;

    let run = authd(&app.db.url(), &["user", "mfa-reset", "susan"], "", &[]).await;
    assert_code(&run, 0);
    assert!(run.stdout.contains("every session"), "{}", run.stdout);

    susan.get("/api/me").await.problem(401);
    // A second step owed to the old factor is void, even with its codes.
    let stale = recovery_step(&client, &owed, &codes[0]).await.problem(401);
    assert_eq!(stale["type"], "urn:authd:problem:mfa-expired");
    let login = client.login("susan", false).await;
    login.assert_status(200);
    let me = me(&app.bearer(login.login_body().token())).await;
    assert_eq!(
        me["mfa"],
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    assert_eq!(me["session"]["amr"], json!(["pwd"]));
    assert_eq!(count(&events(&app), "mfa_reset"), 1);

    let mail = delivered(&app, &sink, "susan@example.com", RESET_NOTICE, 1).await;
    assert!(mail[0].body.contains("susan"), "{}", mail[0].body);

    // Again: nothing to remove, nothing changes, nobody is mailed.
    let again = authd(&app.db.url(), &["user", "mfa-reset", "susan"], "", &[]).await;
    assert_code(&again, 0);
    assert!(
        again.stdout.contains("no second factor"),
        "{}",
        again.stdout
    );
    me_still_works(&app, login.login_body().token()).await;
    assert_eq!(count(&events(&app), "mfa_reset"), 1);
    delivered(&app, &sink, "susan@example.com", RESET_NOTICE, 1).await;
    assert_eq!(
        sink.expect_mails("susan@example.com", RESET_NOTICE, 1)
            .len(),
        1
    );

    let unknown = authd(&app.db.url(), &["user", "mfa-reset", "nobody"], "", &[]).await;
    assert_code(&unknown, 1);
    assert!(
        unknown.stderr.contains("no user named nobody"),
        "{}",
        unknown.stderr
    );
}

async fn me_still_works(app: &TestApp, token: &str) {
    me(&app.bearer(token)).await;
}

/// A second step decided while the reset runs: whichever commits first,
/// no session proved with the removed factor outlives the reset. The
/// account's row is held locked so that both are in flight at once.
#[tokio::test]
async fn a_second_step_racing_the_reset_leaves_no_session_behind() {
    let app = TestApp::spawn().await;
    let (_, _, codes) = mfa_user(&app, "susan").await;
    let client = app.anonymous();
    let token = first_step(&client, "susan").await;

    let mut holder = app.db.connect();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM users WHERE username = 'susan' FOR UPDATE")
        .unwrap();
    let step = tokio::spawn({
        let (client, token, code) = (client.clone(), token.clone(), codes[0].clone());
        async move { recovery_step(&client, &token, &code).await }
    });
    let url = app.db.url();
    let reset =
        tokio::spawn(async move { authd(&url, &["user", "mfa-reset", "susan"], "", &[]).await });
    // Both reach the locked row, then go on in some order.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    holder.batch_execute("COMMIT").unwrap();
    assert_code(&reset.await.unwrap(), 0);
    let step = step.await.unwrap();
    assert!(
        step.status == 200 || step.status == 401,
        "{} {}",
        step.status,
        String::from_utf8_lossy(&step.body)
    );
    if step.status == 200 {
        app.bearer(step.login_body().token())
            .get("/api/me")
            .await
            .problem(401);
    }
    use authd::schema::sessions::dsl::*;
    let live_second_factor: i64 = sessions
        .filter(revoked_at.is_null())
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "'recovery' = ANY(amr)",
        ))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(live_second_factor, 0);
}
