//! Account recovery by e-mail, through a real SMTP server (see
//! `mail_sink`): reset links, address verification, the outbox through
//! outages, crashes and several instances, the throttles, and the command
//! line. Mail is delivered when a test says so
//! ([`TestApp::deliver_pending_mail`]), except by the built binary, whose
//! worker runs as in production.

use std::collections::BTreeMap;
use std::time::Duration;

use authd::configuration::Settings;
use authd::services::mail::outbox::Outcome;
use diesel::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{assert_code, authd};
use crate::helpers::mail_sink::{MailSink, ReceivedMail};
use crate::helpers::{Actor, PASSWORD, Process, TestApp, TestDatabase, TestResponse, eventually};
use authd::configuration::Bucket;

pub const NEW: &str = "purple-monkey-dishwasher";
const APP: &str = "https://app.example.com";
pub const RESET: &str = "Reset your password";
const CONFIRM: &str = "Confirm your e-mail address";

/// Mail through `sink`, links to the example app.
pub fn mailing(sink: &MailSink) -> impl FnOnce(&mut Settings) {
    let url = sink.url();
    move |settings: &mut Settings| {
        settings.mail.smtp_url = Some(url.into());
        settings.mail.app_url = APP.into();
        settings.mail.from = "Example <noreply@example.com>".parse().unwrap();
        settings.throttle.set_limit(Bucket::RecoveryAddress, 1000);
        settings.throttle.set_limit(Bucket::RecoveryIp, 1000);
    }
}

async fn app_mailing(sink: &MailSink) -> TestApp {
    TestApp::spawn_with(mailing(sink)).await
}

/// Delivers the mail due now; the mails with this subject to `to`, at
/// least `count` of them.
pub async fn delivered(
    app: &TestApp,
    sink: &MailSink,
    to: &str,
    subject: &str,
    count: usize,
) -> Vec<ReceivedMail> {
    app.deliver_pending_mail().await;
    sink.expect_mails(to, subject, count)
}

fn assert_outbox_empty(app: &TestApp) {
    let depth = authd::db::mail_outbox::depth(&mut app.db.connect()).unwrap();
    assert_eq!(depth, 0, "{depth} mails still queued");
}

pub async fn forgot(app: &TestApp, email: &str) -> TestResponse {
    app.anonymous()
        .post("/api/password/forgot", &json!({"email": email}))
        .await
}

pub async fn reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    app.anonymous()
        .post(
            "/api/password/reset",
            &json!({"token": token, "new_password": password, "new_password2": password}),
        )
        .await
}

async fn verify(app: &TestApp, token: &str) -> TestResponse {
    app.anonymous()
        .post("/api/email/verify", &json!({"token": token}))
        .await
}

async fn resend(user: &Actor) -> TestResponse {
    user.request(Method::POST, "/api/email/verify/resend")
        .send()
        .await
}

async fn me(user: &Actor) -> Value {
    let response = user.get("/api/me").await;
    response.assert_status(200);
    response.json()
}

/// Changes the logged-in user's password from [`PASSWORD`] to [`NEW`].
async fn change_password(user: &Actor) {
    user.post(
        "/api/me/password",
        &json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW}),
    )
    .await
    .assert_status(204);
}

/// Changes the logged-in user's address.
async fn move_to(user: &Actor, email: &str) {
    user.request(Method::PATCH, "/api/me")
        .json(&json!({"email": email, "current_password": PASSWORD}))
        .send()
        .await
        .assert_status(200);
}

fn events(app: &TestApp) -> Vec<String> {
    use authd::schema::auth_events::dsl::*;
    use diesel::prelude::*;
    auth_events
        .select(event)
        .order(id)
        .load(&mut app.db.connect())
        .unwrap()
}

#[tokio::test]
async fn a_reset_link_arrives_and_works_once() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let (phone, _) = app.logged_in_app("susan").await;
    let (laptop, _) = app.app_login("susan", true).await;

    let response = forgot(&app, "Susan@Example.com").await;
    response.assert_status(202);
    assert!(response.json()["message"].is_string());
    let mail = delivered(&app, &sink, "susan@example.com", RESET, 1)
        .await
        .remove(0);
    assert_eq!(mail.from, "noreply@example.com");
    let link = mail.link();
    assert!(
        link.starts_with(&format!("{APP}/reset-password#token=")),
        "{link}"
    );
    let token = mail.token();
    assert_eq!(token.len(), 43);
    // Only a digest is stored.
    let stored: i64 = diesel::sql_query(format!(
        "SELECT count(*) AS count FROM email_tokens WHERE token_hash = convert_to('{token}', 'UTF8')"
    ))
    .get_result::<Count>(&mut app.db.connect())
    .unwrap()
    .count;
    assert_eq!(stored, 0);

    // The policy applies once the token is known good, and spends nothing.
    reset(&app, &token, "password").await.problem(422)["errors"]["new_password"]
        .as_array()
        .unwrap();
    reset(&app, &token, NEW).await.assert_status(204);

    for device in [&phone, &laptop] {
        device.get("/api/me").await.problem(401);
    }
    let browser = app.browser();
    let old = browser.login("susan", false).await;
    old.problem(401);
    let login = browser
        .post("/api/login", &json!({"username": "susan", "password": NEW}))
        .await;
    login.assert_status(200);
    assert_eq!(
        me(&app.bearer(login.login_body().token())).await["email_verified"],
        true,
        "the link reached the address"
    );

    let again = reset(&app, &token, "another-fine-password")
        .await
        .problem(400);
    assert_eq!(again["type"], "urn:authd:problem:invalid-token");
    assert!(events(&app).contains(&"password_reset".to_owned()));
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

#[tokio::test]
async fn asking_for_an_unknown_address_is_indistinguishable() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    app.user("susan").await;
    app.user("david").await;
    let browser = app.browser();
    browser
        .post(
            "/api/login",
            &json!({"username": "david", "password": PASSWORD}),
        )
        .await
        .assert_status(200);
    authd::db::users::set_active(&mut app.db.connect(), app_user_id(&app, "david"), false).unwrap();

    let forgot = |email: &str| {
        browser
            .request(Method::POST, "/api/password/forgot")
            .json(&json!({"email": email}))
            .send()
    };
    let known = forgot("susan@example.com").await;
    let unknown = forgot("nobody@example.com").await;
    let inactive = forgot("david@example.com").await;
    let strip = |response: &TestResponse| {
        let headers: BTreeMap<String, String> = response
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        (response.status, headers, response.body.clone())
    };
    assert_eq!(strip(&known), strip(&unknown));
    assert_eq!(strip(&known), strip(&inactive));

    delivered(&app, &sink, "susan@example.com", RESET, 1).await;
    // The worker handled the other two as well (the outbox is empty), and
    // sent nothing for them.
    assert_outbox_empty(&app);
    let resets: Vec<_> = sink
        .mails()
        .into_iter()
        .filter(|mail| mail.subject == RESET)
        .collect();
    assert_eq!(resets.len(), 1, "{resets:?}");
}

fn app_user_id(app: &TestApp, name: &str) -> authd::domain::UserId {
    authd::db::users::find_by_username(&mut app.db.connect(), name)
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn expired_replaced_and_voided_links_fail_alike() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let invalid = |body: Value| assert_eq!(body["type"], "urn:authd:problem:invalid-token");
    let resets = |count| delivered(&app, &sink, "susan@example.com", RESET, count);

    // Expired.
    forgot(&app, "susan@example.com").await.assert_status(202);
    let first = resets(1).await[0].token();
    app.db
        .execute("UPDATE email_tokens SET expires_at = now() - interval '1 second'");
    invalid(reset(&app, &first, NEW).await.problem(400));

    // Replaced by a newer one.
    forgot(&app, "susan@example.com").await.assert_status(202);
    let second = resets(2).await[1].token();
    forgot(&app, "susan@example.com").await.assert_status(202);
    let third = resets(3).await[2].token();
    invalid(reset(&app, &second, NEW).await.problem(400));

    // Voided by a password change.
    change_password(&susan).await;
    invalid(
        reset(&app, &third, "another-fine-password")
            .await
            .problem(400),
    );

    // Not a token at all, or one for the other purpose.
    invalid(reset(&app, "nope", NEW).await.problem(400));
    invalid(reset(&app, &"A".repeat(43), NEW).await.problem(400));
    let confirm = delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await[0].token();
    invalid(
        reset(&app, &confirm, "another-fine-password")
            .await
            .problem(400),
    );
    // Missing fields are 422, before any token is looked at.
    let missing = app
        .anonymous()
        .post("/api/password/reset", &json!({"token": third}))
        .await
        .problem(422);
    assert!(missing["errors"]["new_password"].is_array());
}

#[tokio::test]
async fn addresses_are_verified_on_registration_and_on_every_change() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let registered = app.register("susan", "susan@example.com").await;
    registered.assert_status(201);
    assert_eq!(registered.json()["email_verified"], false);
    let (susan, _) = app.app_login("susan", false).await;
    assert_eq!(me(&susan).await["email_verified"], false);

    let mail = delivered(&app, &sink, "susan@example.com", CONFIRM, 1)
        .await
        .remove(0);
    assert!(
        mail.link()
            .starts_with(&format!("{APP}/verify-email#token="))
    );
    verify(&app, &mail.token()).await.assert_status(204);
    assert_eq!(me(&susan).await["email_verified"], true);
    verify(&app, &mail.token()).await.problem(400);
    let verified = resend(&susan).await.problem(409);
    assert_eq!(verified["type"], "urn:authd:problem:already-verified");

    // A new address is unverified, and gets its own link; the old
    // address's links stop working. Asking again sends another link
    // without voiding the first (a mail still on its way must work); the
    // first one used confirms the address and voids the rest.
    move_to(&susan, "susan@example.org").await;
    assert_eq!(me(&susan).await["email_verified"], false);
    let first = delivered(&app, &sink, "susan@example.org", CONFIRM, 1).await[0].token();
    let response = resend(&susan).await;
    response.assert_status(202);
    let second = delivered(&app, &sink, "susan@example.org", CONFIRM, 2).await[1].token();
    verify(&app, &first).await.assert_status(204);
    verify(&app, &second).await.problem(400);
    assert_eq!(me(&susan).await["email_verified"], true);
    assert!(events(&app).contains(&"email_verified".to_owned()));
}

#[tokio::test]
async fn a_changed_address_voids_the_links_sent_to_the_old_one() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let confirm = delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await[0].token();
    forgot(&app, "susan@example.com").await.assert_status(202);
    let reset_token = delivered(&app, &sink, "susan@example.com", RESET, 1).await[0].token();
    move_to(&susan, "susan@example.org").await;
    verify(&app, &confirm).await.problem(400);
    reset(&app, &reset_token, NEW).await.problem(400);
}

#[tokio::test]
async fn mail_waits_out_a_mail_server_outage() {
    let mut sink = MailSink::start();
    let app = app_mailing(&sink).await;
    app.user("susan").await;
    delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await;
    sink.stop();
    let started = std::time::Instant::now();
    forgot(&app, "susan@example.com").await.assert_status(202);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a request never waits for the mail server"
    );
    // Attempts fail meanwhile, and the mail stays queued.
    assert_eq!(app.deliver_pending_mail().await, [Outcome::Retry]);
    let (attempts, error): (i32, Option<String>) = {
        use authd::schema::mail_outbox::dsl::*;
        use diesel::prelude::*;
        mail_outbox
            .select((attempts, last_error))
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(attempts >= 1, "{attempts}");
    assert!(error.is_some());
    sink.resume();
    // The next attempt is due after the back-off: a second after the first
    // failure.
    app.advance(Duration::from_secs(1));
    let mail = delivered(&app, &sink, "susan@example.com", RESET, 1)
        .await
        .remove(0);
    reset(&app, &mail.token(), NEW).await.assert_status(204);
}

#[tokio::test]
async fn queued_mail_survives_a_crash() {
    let mut sink = MailSink::start();
    sink.stop();
    let db = TestDatabase::create();
    let smtp = sink.url();
    let env = [
        ("SMTP_URL", smtp.as_str()),
        ("PUBLIC_APP_URL", APP),
        ("BCRYPT_COST", "4"),
    ];
    let mut server = Process::start(&db, &env).await;
    let instance = server.server();
    let registered = instance.register("susan", "susan@example.com").await;
    assert_eq!(registered.status, 201);
    let asked = json!({"email": "susan@example.com"});
    let forgot = instance
        .anonymous()
        .post("/api/password/forgot", &asked)
        .await;
    assert_eq!(forgot.status, 202);
    server.kill();

    sink.resume();
    // The restarted binary's own worker sends what was queued.
    let _server = Process::start(&db, &env).await;
    let sink_mails = sink.wait_for(2).await;
    let subjects: Vec<&str> = sink_mails
        .iter()
        .map(|mail| mail.subject.as_str())
        .collect();
    assert!(
        subjects.contains(&RESET) && subjects.contains(&CONFIRM),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn two_instances_deliver_each_mail_exactly_once() {
    let sink = MailSink::start();
    let a = app_mailing(&sink).await;
    let b = a.sibling(|_| {}).await;
    const USERS: usize = 12;
    for n in 0..USERS {
        let app = if n % 2 == 0 { &a } else { &b };
        app.register(&format!("user{n}"), &format!("user{n}@example.com"))
            .await
            .assert_status(201);
    }
    a.db.execute(
        "INSERT INTO mail_outbox (kind, address, expires_at) \
         SELECT 'reset', email, now() + interval '1 hour' FROM users",
    );
    // Both workers at once, each finding every mail due.
    tokio::join!(a.deliver_pending_mail(), b.deliver_pending_mail());
    assert!(sink.mails().len() >= 2 * USERS, "{:#?}", sink.mails());
    assert_outbox_empty(&a);
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for mail in sink.mails() {
        *seen.entry((mail.to, mail.subject)).or_default() += 1;
    }
    assert_eq!(seen.len(), 2 * USERS, "{seen:?}");
    assert!(seen.values().all(|count| *count == 1), "{seen:?}");
}

#[tokio::test]
async fn recovery_mails_are_throttled_per_address_and_per_client() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.throttle.set_limit(Bucket::RecoveryAddress, 2);
        settings.throttle.set_limit(Bucket::RecoveryIp, 5);
    })
    .await;
    app.user("susan").await;
    // Per address, whether it has an account or not: alike.
    for address in ["susan@example.com", "nobody@example.com"] {
        for _ in 0..2 {
            forgot(&app, address).await.assert_status(202);
        }
        let refused = forgot(&app, address).await;
        refused.problem(429);
        assert!(refused.header("retry-after").is_some());
    }
    // Per client: the fifth mail asked for from here is the last.
    forgot(&app, "other@example.com").await.assert_status(202);
    forgot(&app, "another@example.com").await.problem(429);
    let from_elsewhere = app.browser_at("127.0.0.2");
    let response = from_elsewhere
        .post(
            "/api/password/forgot",
            &json!({"email": "another@example.com"}),
        )
        .await;
    response.assert_status(202);
    assert!(events(&app).contains(&"recovery_throttled".to_owned()));
}

/// A new verification link is for the logged-in user only, and asking
/// for one is throttled like every recovery mail.
#[tokio::test]
async fn resending_a_verification_link_needs_a_login_and_is_throttled() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.throttle.set_limit(Bucket::RecoveryAddress, 2);
    })
    .await;
    app.anonymous()
        .post("/api/email/verify/resend", &json!({}))
        .await
        .problem(401);
    app.register("susan", "susan@example.com")
        .await
        .assert_status(201);
    let (susan, _) = app.app_login("susan", false).await;
    for _ in 0..2 {
        resend(&susan).await.assert_status(202);
    }
    let refused = resend(&susan).await;
    refused.problem(429);
    assert!(refused.header("retry-after").is_some());
    // The registration's mail and the two asked for; not the refused one.
    delivered(&app, &sink, "susan@example.com", CONFIRM, 3).await;
    assert_outbox_empty(&app);
    assert_eq!(sink.mails().len(), 3);
}

#[tokio::test]
async fn verified_addresses_can_be_required_to_log_in() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.recovery.require_verified_email = true;
    })
    .await;
    app.user("susan").await;
    delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await;
    // A wrong password learns nothing about the address.
    let browser = app.browser();
    browser
        .post(
            "/api/login",
            &json!({"username": "susan", "password": "wrong-password-1"}),
        )
        .await
        .problem(401);
    let refused = browser.login("susan", false).await.problem(403);
    assert_eq!(refused["type"], "urn:authd:problem:email-not-verified");
    assert!(refused["detail"].as_str().unwrap().contains("new link"));
    let fresh = delivered(&app, &sink, "susan@example.com", CONFIRM, 2).await[1].token();
    verify(&app, &fresh).await.assert_status(204);
    browser.login("susan", false).await.assert_status(200);
}

#[tokio::test]
async fn recovery_can_be_turned_off() {
    let app = TestApp::spawn_with(|settings| settings.recovery.enabled = false).await;
    let (susan, _) = app.logged_in_app("susan").await;
    for (path, body) in [
        (
            "/api/password/forgot",
            json!({"email": "susan@example.com"}),
        ),
        (
            "/api/password/reset",
            json!({"token": "x", "new_password": NEW, "new_password2": NEW}),
        ),
        ("/api/email/verify", json!({"token": "x"})),
    ] {
        let body = app.anonymous().post(path, &body).await.problem(404);
        assert_eq!(body["type"], "urn:authd:problem:recovery-disabled");
    }
    resend(&susan).await.problem(404);
    assert_eq!(
        authd::db::mail_outbox::depth(&mut app.db.connect()).unwrap(),
        0
    );
}

#[tokio::test]
async fn production_refuses_recovery_without_a_mail_server() {
    let db = TestDatabase::create();
    let key = "production-secret-key-".repeat(3);
    let base = [("AUTHD_ENV", "production"), ("SECRET_KEY", key.as_str())];
    let run = authd(&db.url(), &["migrate"], "", &base).await;
    assert_code(&run, 2);
    assert!(run.stderr.contains("SMTP_URL"), "{}", run.stderr);
    let without = [&base[..], &[("ACCOUNT_RECOVERY", "false")]].concat();
    assert_code(&authd(&db.url(), &["migrate"], "", &without).await, 2);
    let notices_off = [("SECURITY_NOTIFICATIONS", "false")];
    let without = [&without[..], &notices_off].concat();
    assert_code(&authd(&db.url(), &["migrate"], "", &without).await, 0);
}

#[tokio::test]
async fn the_command_line_tests_mail_and_prints_reset_links() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let (susan, _) = app.logged_in_app("susan").await;
    let smtp = sink.url();
    let env = [("SMTP_URL", smtp.as_str()), ("PUBLIC_APP_URL", APP)];

    let mail_test = |env: Vec<(&'static str, String)>| {
        let database = app.db.url();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            authd(&database, &["mail", "test", "ops@example.com"], "", &env).await
        }
    };
    let sent = mail_test(vec![("SMTP_URL", smtp.clone())]).await;
    assert_code(&sent, 0);
    assert!(sent.stdout.contains("250"), "{}", sent.stdout);
    // Sent before the command exited.
    sink.expect_mails("ops@example.com", "authd test mail", 1);
    let closed = mail_test(vec![("SMTP_URL", "smtp://127.0.0.1:1".into())]).await;
    assert_code(&closed, 2);
    assert!(closed.stderr.contains("cannot reach"), "{}", closed.stderr);
    assert_code(&mail_test(Vec::new()).await, 2);

    let printed = authd(&app.db.url(), &["user", "reset-link", "susan"], "", &env).await;
    assert_code(&printed, 0);
    let link = printed.stdout.trim();
    let (page, token) = link.split_once("#token=").unwrap();
    assert_eq!(page, format!("{APP}/reset-password"));
    reset(&app, token, NEW).await.assert_status(204);
    susan.get("/api/me").await.problem(401);
    assert!(events(&app).contains(&"reset_link_issued".to_owned()));
    assert_code(
        &authd(&app.db.url(), &["user", "reset-link", "nobody"], "", &env).await,
        1,
    );
}

/// Waits until the process's log contains `needle`; the log.
async fn log_containing(process: &Process, needle: &str) -> String {
    eventually(&format!("{needle:?} logged"), || {
        let log = std::fs::read_to_string(&process.log).unwrap_or_default();
        if log.contains(needle) {
            Ok(log)
        } else {
            Err(log)
        }
    })
    .await
}

#[tokio::test]
async fn without_a_mail_server_development_logs_the_mail() {
    let db = TestDatabase::create();
    let server = Process::start(&db, &[("RUST_LOG", "info"), ("BCRYPT_COST", "4")]).await;
    log_containing(&server, "SMTP_URL is not set").await;
    let registered = server.server().register("susan", "susan@example.com").await;
    assert_eq!(registered.status, 201);
    log_containing(&server, "http://localhost:3000/verify-email#token=").await;
}

#[tokio::test]
async fn production_warns_about_plain_smtp_to_another_host() {
    let db = TestDatabase::create();
    let production = [
        ("AUTHD_ENV", "production"),
        ("PUBLIC_URL", "https://auth.example.com"),
        ("RUST_LOG", "info"),
    ];
    // Without a sender or the app's address it starts, and says so.
    let plain = [
        &production[..],
        &[("SMTP_URL", "smtp://mail.example.com:25")],
    ]
    .concat();
    let server = Process::start(&db, &plain).await;
    log_containing(&server, "plain text to another host").await;
    log_containing(&server, "MAIL_FROM is not set").await;
    log_containing(&server, "PUBLIC_APP_URL is not set").await;
    drop(server);
    let secure = [
        &production[..],
        &[
            ("SMTP_URL", "smtp://mail.example.com:587?tls=required"),
            ("MAIL_FROM", "noreply@example.com"),
            ("PUBLIC_APP_URL", APP),
        ],
    ]
    .concat();
    let server = Process::start(&db, &secure).await;
    let log = log_containing(&server, "authd listening").await;
    assert!(!log.contains("plain text"), "{log}");
    assert!(!log.contains("is not set"), "{log}");
}

#[tokio::test]
async fn changing_or_deleting_an_account_never_waits_for_a_mail_being_sent() {
    let mut sink = MailSink::start();
    sink.stop();
    let app = app_mailing(&sink).await;
    let (susan, _) = app.logged_in_app("susan").await;
    forgot(&app, "susan@example.com").await.assert_status(202);
    // Another connection holds every queued mail's row, as a worker does
    // while it talks to a slow mail server.
    let mut holder = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut holder).unwrap();
    let held = diesel::sql_query("SELECT id FROM mail_outbox FOR UPDATE")
        .execute(&mut holder)
        .unwrap();
    assert_eq!(held, 2, "the verification and the reset are queued");

    let started = std::time::Instant::now();
    move_to(&susan, "susan@example.org").await;
    change_password(&susan).await;
    susan
        .request(Method::DELETE, "/api/me")
        .json(&json!({"current_password": NEW}))
        .send()
        .await
        .assert_status(204);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    diesel::sql_query("COMMIT").execute(&mut holder).unwrap();
    // The account is gone: its queued mails are skipped, not sent.
    sink.resume();
    app.deliver_pending_mail().await;
    assert_outbox_empty(&app);
    assert!(sink.mails().is_empty(), "{:?}", sink.mails());
}

/// Asks for a reset link for `email` from `client` (a browser at some
/// address, say).
async fn forgot_from(client: &Actor, email: &str) -> TestResponse {
    client
        .post("/api/password/forgot", &json!({"email": email}))
        .await
}

/// Every kind of mail goes to the address as stored, byte for byte, both
/// in the envelope (where it really goes) and in its To: header. The
/// addresses are typed in mixed case and carry every special character an
/// address may have, so that any parsing or normalising on the way would
/// show.
#[tokio::test]
async fn every_kind_of_mail_goes_to_the_stored_address_byte_for_byte() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    let mut stored = Vec::new();
    for (name, typed) in [
        ("obrien", "O'Brien+X@Example.COM"),
        ("specials", "A!#$%&'*+/=^_`{|}~?-Z@Example.com"),
    ] {
        let registered = app.register(name, typed).await;
        registered.assert_status(201);
        let address = registered.json()["email"].as_str().unwrap().to_owned();
        assert_eq!(address, typed.to_lowercase());
        forgot(&app, &address).await.assert_status(202);
        stored.push(address);
    }
    let outcomes = app.deliver_pending_mail().await;
    assert_eq!(outcomes, [Outcome::Sent; 4]);
    let mails = sink.mails();
    for address in &stored {
        for subject in [CONFIRM, RESET] {
            let found: Vec<_> = mails
                .iter()
                .filter(|mail| mail.subject == subject && mail.envelope_to == [address.clone()])
                .collect();
            assert_eq!(found.len(), 1, "{subject} to {address}: {mails:#?}");
            assert_eq!(&found[0].to, address, "the To: header");
        }
    }
}

/// Addresses stored before today's rules (here written by SQL) are mailed
/// exactly as stored or not at all, every kind of mail: an encoded word is
/// never decoded into the mailbox it spells (`alice@example.com`), and a
/// value a mailbox parser reads as a name and another address is dropped,
/// never sent to that address.
#[tokio::test]
async fn stored_addresses_are_mailed_as_they_are_or_not_at_all() {
    const ENCODED: &str = "=?utf-8?q?=61lice?=@example.com";
    const NAMED: &str = "bob <mallory@evil.example>";
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    app.user("encoded").await;
    app.user("named").await;
    app.deliver_pending_mail().await;
    let registration = sink.mails().len();
    assert_eq!(registration, 2);
    app.db.execute(&format!(
        "UPDATE users SET email = CASE username WHEN 'encoded' THEN '{ENCODED}' ELSE '{NAMED}' END"
    ));
    app.db.execute(
        "INSERT INTO mail_outbox (kind, user_id, address, expires_at) \
         SELECT kind, id, email, now() + interval '1 hour' \
         FROM users, (VALUES ('verify'), ('reset')) AS kinds (kind)",
    );
    let outcomes = app.deliver_pending_mail().await;
    let count = |outcome| outcomes.iter().filter(|o| **o == outcome).count();
    assert_eq!(
        (count(Outcome::Sent), count(Outcome::Dropped)),
        (2, 2),
        "{outcomes:?}"
    );
    let mails = sink.mails();
    let sent: Vec<_> = mails.iter().skip(registration).collect();
    let mut subjects: Vec<&str> = sent.iter().map(|mail| mail.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, [CONFIRM, RESET], "{mails:#?}");
    for mail in sent {
        assert_eq!(mail.envelope_to, [ENCODED], "{}", mail.subject);
    }
}

/// Others' reset requests for an address (from other client networks:
/// here other /24s) count apart from its owner's: once they are refused,
/// the owner's network still gets a link, and it works.
#[tokio::test]
async fn others_requests_leave_the_owner_a_reset_link() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.throttle.set_limit(Bucket::RecoveryAddress, 2);
    })
    .await;
    app.user("susan").await;
    for network in ["127.0.1.1", "127.0.2.1"] {
        let other = app.browser_at(network);
        for _ in 0..2 {
            forgot_from(&other, "susan@example.com")
                .await
                .assert_status(202);
        }
        forgot_from(&other, "susan@example.com").await.problem(429);
    }
    let theirs = delivered(&app, &sink, "susan@example.com", RESET, 4)
        .await
        .len();
    let owner = app.browser_at("127.0.3.1");
    forgot_from(&owner, "susan@example.com")
        .await
        .assert_status(202);
    let token =
        delivered(&app, &sink, "susan@example.com", RESET, theirs + 1).await[theirs].token();
    reset(&app, &token, NEW).await.assert_status(204);
}

/// A new confirmation link asked for by the logged-in owner counts against
/// the account, never against the address: others' requests for it, from
/// the owner's own network and from elsewhere, up to the overall cap,
/// refuse nothing the owner asks for.
#[tokio::test]
async fn others_requests_never_refuse_the_owners_resend() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.throttle.set_limit(Bucket::RecoveryAddress, 2);
        settings.throttle.set_limit(Bucket::RecoveryAddressTotal, 4);
    })
    .await;
    app.user("susan").await;
    // Logged in from 127.0.0.1.
    let (susan, _) = app.app_login("susan", false).await;
    for network in ["127.0.0.2", "127.0.1.1"] {
        let other = app.browser_at(network);
        for _ in 0..2 {
            forgot_from(&other, "susan@example.com")
                .await
                .assert_status(202);
        }
    }
    // Every allowance the address has is used up: the owner's network's
    // and the overall one.
    for network in ["127.0.0.3", "127.0.2.1"] {
        forgot_from(&app.browser_at(network), "susan@example.com")
            .await
            .problem(429);
    }
    for _ in 0..2 {
        resend(&susan).await.assert_status(202);
    }
    // The registration's link and the two asked for.
    delivered(&app, &sink, "susan@example.com", CONFIRM, 3).await;
}

/// Past the overall cap per address (RECOVERY_MAILS_PER_ADDRESS_TOTAL, 20
/// by default), a request from any network is refused with a Retry-After,
/// however few that network has sent.
#[tokio::test]
async fn the_overall_cap_per_address_is_a_429_with_retry_after() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.throttle.set_limit(Bucket::RecoveryAddress, 2);
    })
    .await;
    assert_eq!(
        app.settings
            .throttle
            .limit(Bucket::RecoveryAddressTotal)
            .limit,
        20,
        "the default"
    );
    app.user("susan").await;
    for network in 1..=10 {
        let other = app.browser_at(&format!("127.0.{network}.1"));
        for _ in 0..2 {
            forgot_from(&other, "susan@example.com")
                .await
                .assert_status(202);
        }
    }
    let refused = forgot_from(&app.browser_at("127.0.11.1"), "susan@example.com").await;
    refused.problem(429);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
}

/// A reset link supersedes only the links asked for from the same client
/// network: a flood of requests from elsewhere, each mailed with a link of
/// its own, leaves the owner's live link working.
#[tokio::test]
async fn a_flood_of_resets_from_elsewhere_leaves_the_owners_link_working() {
    let sink = MailSink::start();
    let app = app_mailing(&sink).await;
    app.user("susan").await;
    let owner = app.browser_at("127.0.3.1");
    forgot_from(&owner, "susan@example.com")
        .await
        .assert_status(202);
    let token = delivered(&app, &sink, "susan@example.com", RESET, 1).await[0].token();
    for network in ["127.0.1.1", "127.0.2.1"] {
        let other = app.browser_at(network);
        for _ in 0..3 {
            forgot_from(&other, "susan@example.com")
                .await
                .assert_status(202);
        }
    }
    delivered(&app, &sink, "susan@example.com", RESET, 7).await;
    reset(&app, &token, NEW).await.assert_status(204);
}

/// With verified addresses required, a refused login mails a new link
/// beside the registration's: the older one still works (a mail still on
/// its way must), and using it voids the new one.
#[tokio::test]
async fn a_refused_login_mails_a_new_link_without_voiding_the_first() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.recovery.require_verified_email = true;
    })
    .await;
    app.user("susan").await;
    let registration = delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await[0].token();
    let browser = app.browser();
    browser.login("susan", false).await.problem(403);
    let fresh = delivered(&app, &sink, "susan@example.com", CONFIRM, 2).await[1].token();
    verify(&app, &registration).await.assert_status(204);
    verify(&app, &fresh).await.problem(400);
    browser.login("susan", false).await.assert_status(200);
}

/// Refused logins mail a link at most once in ten minutes: trying again
/// and again fills nobody's inbox.
#[tokio::test]
async fn a_refused_login_mails_a_link_at_most_once_in_ten_minutes() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.recovery.require_verified_email = true;
    })
    .await;
    app.user("susan").await;
    delivered(&app, &sink, "susan@example.com", CONFIRM, 1).await;
    let browser = app.browser();
    let refused = |mailed: bool| {
        let browser = browser.clone();
        async move {
            let problem = browser.login("susan", false).await.problem(403);
            let detail = problem["detail"].as_str().unwrap().to_owned();
            assert_eq!(detail.contains("new link"), mailed, "{detail}");
        }
    };
    refused(true).await;
    delivered(&app, &sink, "susan@example.com", CONFIRM, 2).await;
    refused(false).await;
    app.advance(Duration::from_secs(9 * 60));
    refused(false).await;
    app.deliver_pending_mail().await;
    assert_eq!(sink.mails().len(), 2, "{:#?}", sink.mails());
    app.advance(Duration::from_secs(61));
    refused(true).await;
    delivered(&app, &sink, "susan@example.com", CONFIRM, 3).await;
}
