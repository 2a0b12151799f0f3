//! `POST /api/me/password`: a new password, confirmed by the current one.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::{Client, FieldErrors, Owner, Password, add_error};
use crate::http::auth::authenticate::CurrentUser;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, confirm, parse_field, required};
use crate::services::accounts::Accounts;

#[derive(Deserialize)]
pub struct PasswordChangeRequest {
    current_password: Option<String>,
    new_password: Option<String>,
    new_password2: Option<String>,
}

/// Changes the password; every other session of the user ends, this one
/// stays valid.
pub async fn change_password(
    current: CurrentUser,
    accounts: web::Data<Accounts>,
    client: Client,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = &current.0;
    let mut errors = FieldErrors::new();
    let old = required(
        &mut errors,
        "current_password",
        body.current_password.as_deref(),
    );
    let typed = required(&mut errors, "new_password", body.new_password.as_deref());
    let again = required(&mut errors, "new_password2", body.new_password2.as_deref());
    let owner = Owner {
        username: Some(&me.user.username),
        email: Some(&me.user.email),
    };
    let new = parse_field(&mut errors, "new_password", typed, |value| {
        Password::parse(value, owner)
    });
    if typed.is_some() && old == typed {
        add_error(
            &mut errors,
            "new_password",
            "New password must differ from the current one.",
        );
    }
    confirm(
        &mut errors,
        ("new_password2", again),
        ("new_password", body.new_password.as_deref()),
    );
    let (Some(old), Some(new), true) = (old, new, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    accounts
        .change_password(&me.user, &me.session, old.to_owned().into(), new, &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
