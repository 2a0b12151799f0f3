//! Registration: validation and its messages, uniqueness under
//! concurrency, and no session started.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

#[tokio::test]
async fn registering_returns_the_user_and_starts_no_session() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let response = app.register("susan", "  Susan@Example.COM ").await;
    response.assert_status(201);
    let user = response.json();
    assert_eq!(user["username"], "susan");
    assert_eq!(
        user["email"], "susan@example.com",
        "trimmed and lower-cased"
    );
    assert!(user["id"].is_i64());
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());
    assert!(
        response.set_cookies().is_empty(),
        "registration must not log in"
    );
    browser.get("/api/me").await.problem(401);

    let hash: String = {
        use diesel::prelude::*;
        authd::schema::users::table
            .select(authd::schema::users::password_hash)
            .first(&mut app.db.connect())
            .unwrap()
    };
    assert!(
        hash.starts_with("$2b$04$"),
        "bcrypt at the configured cost: {hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn every_missing_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let body = browser.post("/api/register", &json!({})).await.problem(422);
    for field in ["username", "email", "password", "password2"] {
        assert_eq!(
            body["errors"][field],
            json!(["This field is required."]),
            "{field}"
        );
    }
}

#[tokio::test]
async fn invalid_fields_get_one_message_each() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let long_email = format!("{}@example.com", "a".repeat(243));
    let cases: &[(&str, serde_json::Value, &str)] = &[
        ("username", json!("ab"), "3 to 32"),
        ("username", json!("a".repeat(33)), "3 to 32"),
        ("username", json!("su san"), "letters, digits"),
        ("username", json!("süsan"), "letters, digits"),
        ("email", json!("not-an-email"), "Invalid email"),
        ("email", json!(long_email), "254"),
        ("password", json!("short"), "at least 8"),
        ("password", json!("p".repeat(73)), "72 bytes"),
        ("password", json!("é".repeat(37)), "72 bytes"),
    ];
    for (field, value, fragment) in cases {
        let mut body = json!({
            "username": "valid_name", "email": "valid@example.com",
            "password": PASSWORD, "password2": PASSWORD,
        });
        body[field] = value.clone();
        if *field == "password" {
            body["password2"] = value.clone();
        }
        let problem = browser.post("/api/register", &body).await.problem(422);
        let errors = problem["errors"].as_object().unwrap();
        assert_eq!(errors.len(), 1, "{field}={value}: {problem}");
        let message = errors[*field][0].as_str().unwrap();
        assert!(message.contains(fragment), "{field}={value}: {message}");
    }
}

#[tokio::test]
async fn password2_must_match() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let problem = browser.post("/api/register", &json!({"username": "susan", "email": "s@example.com", "password": PASSWORD, "password2": "something-else"}))
        .await
        .problem(422);
    assert_eq!(
        problem["errors"],
        json!({"password2": ["Field must be equal to password."]})
    );
}

#[tokio::test]
async fn taken_names_are_case_insensitive_and_reported_with_other_errors() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    app.user("susan").await;
    let problem = app
        .register("Susan", "other@example.com")
        .await
        .problem(422);
    assert_eq!(
        problem["errors"],
        json!({"username": ["Please use a different username."]})
    );
    let problem = app
        .register("other", "SUSAN@example.com")
        .await
        .problem(422);
    assert_eq!(
        problem["errors"],
        json!({"email": ["Please use a different email address."]})
    );

    let problem = browser.post("/api/register", &json!({"username": "SUSAN", "email": "susan@example.com", "password": "short", "password2": "short"}))
        .await
        .problem(422);
    let errors = problem["errors"].as_object().unwrap();
    assert_eq!(
        errors["username"],
        json!(["Please use a different username."])
    );
    assert_eq!(
        errors["email"],
        json!(["Please use a different email address."])
    );
    assert!(
        errors["password"][0]
            .as_str()
            .unwrap()
            .contains("at least 8")
    );
}

#[tokio::test]
async fn concurrent_duplicate_registrations_give_one_201_and_the_rest_422() {
    let app = TestApp::spawn().await;
    let app = &app;
    let attempts = (0..8).map(|i| async move {
        let name = if i % 2 == 0 { "racer" } else { "RACER" };
        app.register(name, &format!("racer{i}@example.com")).await
    });
    let responses = futures_util::future::join_all(attempts).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let rejected: Vec<_> = responses.iter().filter(|r| r.status == 422).collect();
    assert_eq!(created, 1);
    assert_eq!(rejected.len(), 7);
    for response in rejected {
        assert_eq!(
            response.json()["errors"]["username"],
            json!(["Please use a different username."])
        );
    }

    let same_email = (0..6).map(|i| async move {
        app.register(&format!("mail{i}"), "shared@example.com")
            .await
    });
    let responses = futures_util::future::join_all(same_email).await;
    assert_eq!(responses.iter().filter(|r| r.status == 201).count(), 1);
    assert_eq!(responses.iter().filter(|r| r.status == 422).count(), 5);

    let count: i64 = {
        use diesel::prelude::*;
        authd::schema::users::table
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(count, 2);
}

#[tokio::test]
async fn registering_while_logged_in_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (browser, login) = app.logged_in_browser("susan").await;
    let body = json!({"username": "other", "email": "o@example.com", "password": PASSWORD, "password2": PASSWORD});
    let response = browser
        .request(reqwest::Method::POST, "/api/register")
        .json(&body)
        .header("x-csrf-token", login.csrf())
        .send()
        .await;
    response.problem(409);

    app.bearer(login.token())
        .request(reqwest::Method::POST, "/api/register")
        .json(&body)
        .send()
        .await
        .problem(409);
}

#[tokio::test]
async fn wrong_field_types_are_field_errors() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let problem = browser.post("/api/register", &json!({"username": 42, "email": "s@example.com", "password": PASSWORD, "password2": PASSWORD}))
        .await
        .problem(422);
    assert!(
        problem["errors"]["username"][0]
            .as_str()
            .unwrap()
            .contains("expected a string")
    );
}

/// One mailbox, one account: spellings of a registered address that look
/// the same on screen (or are the same mailbox) are taken, and addresses
/// with characters nobody can see are refused.
#[tokio::test]
async fn look_alike_addresses_cannot_make_a_second_account() {
    let app = TestApp::spawn().await;
    app.register("dup", "dup@example.com")
        .await
        .assert_status(201);
    app.register("idn", "idn@bücher.example")
        .await
        .assert_status(201);
    let taken = ["Please use a different email address."];
    for (n, same) in [
        "DUP@EXAMPLE.COM",
        "\u{FF44}\u{FF55}\u{FF50}@example.com",
        "dup@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com",
        "dup@example\u{3002}com",
        "idn@xn--bcher-kva.example",
        "idn@B\u{DC}CHER.example",
    ]
    .into_iter()
    .enumerate()
    {
        let problem = app.register(&format!("other{n}"), same).await.problem(422);
        assert_eq!(problem["errors"]["email"], json!(taken), "{same:?}");
    }
    for (n, hidden) in [
        "dup@ex\u{00AD}ample.com",
        "dup\u{200B}@example.com",
        "d\u{200D}up@example.com",
        "dup@example.com\u{202E}",
        "\u{2067}dup@example.com",
        "dup@exa\u{FEFF}mple.com",
        "dup@example.com\r\n",
        "dup@example.com\t",
        "\u{00A0}dup@example.com",
        "dup@example.com\u{3000}",
    ]
    .into_iter()
    .enumerate()
    {
        let problem = app
            .register(&format!("hidden{n}"), hidden)
            .await
            .problem(422);
        let message = problem["errors"]["email"][0].as_str().unwrap_or_default();
        assert!(message.contains("invisible"), "{hidden:?}: {problem}");
    }
    let stored: Vec<String> = {
        use authd::schema::users::dsl::*;
        use diesel::prelude::*;
        users
            .select(email)
            .order(id)
            .load(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(stored, ["dup@example.com", "idn@xn--bcher-kva.example"]);
}

/// An RFC 2047 encoded word in the local part is no address: a mail
/// library that decodes it would mail another mailbox than the one stored
/// (`=?utf-8?q?=61lice?=` reads as `alice`). `=` and `?` apart are
/// ordinary characters of an address.
#[tokio::test]
async fn encoded_words_are_not_addresses() {
    let app = TestApp::spawn().await;
    for (n, encoded) in [
        "=?utf-8?q?=61lice?=@example.com",
        "=?UTF-8?B?YWxpY2U=?=@example.com",
        "bob=?x@example.com",
        "bob?=x@example.com",
    ]
    .into_iter()
    .enumerate()
    {
        let problem = app
            .register(&format!("encoded{n}"), encoded)
            .await
            .problem(422);
        assert_eq!(
            problem["errors"],
            json!({"email": ["Invalid email address."]}),
            "{encoded:?}"
        );
    }
    let plain = app.register("plain", "a=b?c@example.com").await;
    plain.assert_status(201);
    assert_eq!(plain.json()["email"], "a=b?c@example.com");
}

/// A name that begins with `-` or `.` would read as an option (or a
/// hidden file) where an operator types it on a command line.
#[tokio::test]
async fn usernames_that_read_as_options_are_refused() {
    let app = TestApp::spawn().await;
    for (n, name) in ["--help", "-rf", ".hidden"].into_iter().enumerate() {
        let problem = app
            .register(name, &format!("option{n}@example.com"))
            .await
            .problem(422);
        let errors = problem["errors"].as_object().unwrap();
        assert_eq!(errors.len(), 1, "{name}: {problem}");
        let message = errors["username"][0].as_str().unwrap();
        assert!(message.contains("not begin with"), "{name}: {message}");
    }
    // Inside a name, both are fine.
    app.user("rf-.x").await;
}
