//! `POST /api/me/password`: a new password, confirmed by the current one.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use crate::domain::{Client, Owner, Password, add_error, parse_field};
use crate::http::auth::authenticate::Authenticated;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::accounts::Accounts;

#[derive(Deserialize, Validate)]
pub struct PasswordChangeRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    new_password: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(
        length(min = 1, message = "This field is required."),
        must_match(
            other = "new_password",
            message = "Field must be equal to new_password."
        )
    )]
    new_password2: String,
    /// For an account with a second factor.
    code: Option<String>,
}

/// Changes the password; every other session of the user ends, this one
/// stays valid.
pub async fn change_password(
    me: Authenticated,
    accounts: web::Data<Accounts>,
    client: Client,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = check(&body);
    let owner = Owner {
        username: Some(&me.user.username),
        email: Some(&me.user.email),
    };
    let typed = Some(body.new_password.as_str()).filter(|typed| !typed.is_empty());
    let new = parse_field(&mut errors, "new_password", typed, |value| {
        Password::parse(value, owner)
    });
    if typed == Some(body.current_password.as_str()) {
        add_error(
            &mut errors,
            "new_password",
            "New password must differ from the current one.",
        );
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let current = body.current_password.into();
    accounts
        .change_password(&me.user, &me.session, current, body.code, new, &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
