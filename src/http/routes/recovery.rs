//! Account recovery: `POST /api/password/forgot` and `/api/password/reset`,
//! `POST /api/email/verify` and `/api/email/verify/resend`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::{Client, Email, FieldErrors, Owner, Password};
use crate::http::auth::authenticate::CurrentUser;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, confirm, parse_field, required};
use crate::services::recovery::Recovery;

/// The one answer to every request for a reset link.
const RESET_ASKED: &str = "If an account uses this address, a link to reset its password is \
                           on its way to it.";
const VERIFICATION_ASKED: &str = "A new confirmation link is on its way to your address.";

#[derive(Serialize)]
struct Accepted {
    message: &'static str,
}

#[derive(Deserialize)]
pub struct ForgotRequest {
    email: Option<String>,
}

/// Queues a reset link for the address. The answer is the same, status,
/// body and headers, whether or not an account has the address.
pub async fn forgot_password(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<ForgotRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let mut errors = FieldErrors::new();
    let typed = required(&mut errors, "email", body.email.as_deref());
    let Some(email) = parse_field(&mut errors, "email", typed, Email::parse) else {
        return Err(ApiError::Validation(errors));
    };
    recovery.request_reset(email, &client).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: RESET_ASKED,
    }))
}

#[derive(Deserialize)]
pub struct ResetRequest {
    token: Option<String>,
    new_password: Option<String>,
    new_password2: Option<String>,
}

/// Sets a new password with a reset link's token; every session of the
/// account ends.
pub async fn reset_password(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let mut errors = FieldErrors::new();
    let token = required(&mut errors, "token", body.token.as_deref());
    let typed = required(&mut errors, "new_password", body.new_password.as_deref());
    let again = required(&mut errors, "new_password2", body.new_password2.as_deref());
    confirm(
        &mut errors,
        ("new_password2", again),
        ("new_password", typed),
    );
    let (Some(token), Some(typed), true) = (token, typed, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    // The policy needs the owner, whom only a valid token names: a bad
    // token is refused before the password is looked at.
    let opened = recovery.open_reset(token).await?;
    let owner = Owner {
        username: Some(&opened.user.username),
        email: Some(&opened.user.email),
    };
    let new = Password::parse(typed, owner)
        .map_err(|message| ApiError::field("new_password", message))?;
    recovery.reset_password(opened, new, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct VerifyRequest {
    token: Option<String>,
}

/// Confirms an address with a verification link's token.
pub async fn verify_email(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let mut errors = FieldErrors::new();
    let Some(token) = required(&mut errors, "token", body.token.as_deref()) else {
        return Err(ApiError::Validation(errors));
    };
    recovery.verify_email(token, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends the logged-in user a new confirmation link.
pub async fn resend_verification(
    current: CurrentUser,
    recovery: web::Data<Recovery>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    recovery
        .resend_verification(&current.0.user, &client)
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: VERIFICATION_ASKED,
    }))
}
