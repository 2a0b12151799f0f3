//! Security notices (ASVS 6.3.6): every change to how an account is logged
//! in to is mailed to its owner, at the real SMTP sink, saying what and
//! when and carrying no secret; `SECURITY_NOTIFICATIONS=false` sends none.

use reqwest::Method;
use serde_json::json;

use crate::helpers::mail_sink::{MailSink, ReceivedMail};
use crate::helpers::{PASSWORD, TestApp};
use crate::mfa::{first_step, mfa_user, recovery_codes, recovery_step};
use crate::recovery::{NEW, RESET, delivered, forgot, mailing, reset};

const OLD_ADDRESS: &str = "susan@example.com";
const NEW_ADDRESS: &str = "susan@example.org";
const CONFIRM: &str = "Confirm your e-mail address";

#[tokio::test]
async fn each_change_is_told_to_the_owner_once_without_a_secret() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(mailing(&sink)).await;
    let (susan, phone, first_codes) = mfa_user(&app, "susan").await;
    let mut secrets: Vec<String> = first_codes.clone();
    secrets.push(phone.totp.get_secret_base32());
    let expect = async |to: &str, subject: &str| -> ReceivedMail {
        delivered(&app, &sink, to, subject, 1).await.remove(0)
    };
    expect(OLD_ADDRESS, "Two-step login was turned on").await;

    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    let regenerated = susan.post("/api/mfa/recovery-codes", &body).await;
    let codes = recovery_codes(&regenerated);
    secrets.extend(codes.iter().cloned());
    expect(OLD_ADDRESS, "New recovery codes were made").await;

    let client = app.anonymous();
    let token = first_step(&client, "susan").await;
    secrets.push(token.clone());
    let login = recovery_step(&client, &token, &codes[0]).await;
    secrets.push(login.login_body().token().to_owned());
    expect(OLD_ADDRESS, "A recovery code was used").await;

    // The address it left hears of the move; the new one is not named.
    let body =
        json!({"current_password": PASSWORD, "email": NEW_ADDRESS, "code": phone.next_code(&app)});
    let moved = susan
        .request(Method::PATCH, "/api/me")
        .json(&body)
        .send()
        .await;
    moved.assert_status(200);
    let moved = expect(OLD_ADDRESS, "Your account's address was changed").await;
    assert!(!moved.body.contains(NEW_ADDRESS), "{}", moved.body);

    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    susan
        .request(Method::DELETE, "/api/mfa/totp")
        .json(&body)
        .send()
        .await
        .assert_status(204);
    expect(NEW_ADDRESS, "Two-step login was turned off").await;

    let body = json!({"current_password": PASSWORD, "new_password": NEW, "new_password2": NEW});
    susan
        .post("/api/me/password", &body)
        .await
        .assert_status(204);
    expect(NEW_ADDRESS, "Your password was changed").await;

    forgot(&app, NEW_ADDRESS).await.assert_status(202);
    let link = delivered(&app, &sink, NEW_ADDRESS, RESET, 1).await[0].token();
    secrets.push(link.clone());
    reset(&app, &link, PASSWORD).await.assert_status(204);
    expect(NEW_ADDRESS, "Your password was reset").await;

    let notices: Vec<ReceivedMail> = sink
        .mails()
        .into_iter()
        .filter(|mail| ![RESET, CONFIRM].contains(&mail.subject.as_str()))
        .collect();
    assert_eq!(notices.len(), 7, "one mail per change: {notices:#?}");
    secrets.extend([PASSWORD.to_owned(), NEW.to_owned()]);
    for notice in &notices {
        assert_eq!(notice.from, "noreply@example.com", "{notice:#?}");
        assert!(notice.body.contains("Hello susan,"), "{}", notice.body);
        assert!(notice.body.contains(" UTC."), "says when: {}", notice.body);
        assert!(
            notice.body.contains("If this was not you") || notice.body.contains("did not ask"),
            "says what to do: {}",
            notice.body
        );
        assert!(!notice.body.contains("#token="), "{}", notice.body);
        for secret in &secrets {
            assert!(
                !notice.body.contains(secret.as_str()),
                "{:?} carries a secret",
                notice.subject
            );
        }
    }
}

#[tokio::test]
async fn with_notifications_off_nothing_is_mailed() {
    let sink = MailSink::start();
    let app = TestApp::spawn_with(|settings| {
        mailing(&sink)(settings);
        settings.mail.security_notifications = false;
    })
    .await;
    let (susan, phone, _) = mfa_user(&app, "susan").await;
    let body = json!({"current_password": PASSWORD, "code": phone.next_code(&app)});
    susan
        .post("/api/mfa/recovery-codes", &body)
        .await
        .assert_status(200);
    app.deliver_pending_mail().await;
    // The registration's request to confirm the address, and nothing else.
    let mails = sink.mails();
    assert!(
        mails.iter().all(|mail| mail.subject == CONFIRM),
        "{mails:#?}"
    );
}
