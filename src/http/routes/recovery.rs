//! Account recovery: `POST /api/password/forgot` and `/api/password/reset`,
//! `POST /api/email/verify` and `/api/email/verify/resend`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::domain::{Client, Email, Owner, Password, parse_field};
use crate::http::auth::authenticate::Authenticated;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::recovery::Recovery;

/// The one answer to every request for a reset link.
const RESET_ASKED: &str = "If an account uses this address, a link to reset its password is \
                           on its way to it.";
const VERIFICATION_ASKED: &str = "A new confirmation link is on its way to your address.";

#[derive(Serialize)]
struct Accepted {
    message: &'static str,
}

#[derive(Deserialize, Validate)]
pub struct ForgotRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    email: String,
}

/// Queues a reset link for the address. The answer is the same, status,
/// body and headers, whether or not an account has the address.
pub async fn forgot_password(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<ForgotRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let mut errors = check(&body);
    let typed = Some(body.email.as_str()).filter(|typed| !typed.is_empty());
    let (Some(email), true) = (
        parse_field(&mut errors, "email", typed, Email::parse),
        errors.is_empty(),
    ) else {
        return Err(ApiError::Validation(errors));
    };
    recovery.request_reset(email, &client).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: RESET_ASKED,
    }))
}

#[derive(Deserialize, Validate)]
pub struct ResetRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    token: String,
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
}

/// Sets a new password with a reset link's token; every session of the
/// account ends.
pub async fn reset_password(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // The policy needs the owner, whom only a valid token names: a bad
    // token is refused before the password is looked at.
    let opened = recovery.open_reset(&body.token).await?;
    let owner = Owner {
        username: Some(&opened.user.username),
        email: Some(&opened.user.email),
    };
    let new = Password::parse(&body.new_password, owner)
        .map_err(|message| ApiError::field("new_password", message))?;
    recovery.reset_password(opened, new, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Validate)]
pub struct VerifyRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    token: String,
}

/// Confirms an address with a verification link's token.
pub async fn verify_email(
    recovery: web::Data<Recovery>,
    client: Client,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery.available()?;
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    recovery.verify_email(&body.token, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends the logged-in user a new confirmation link.
pub async fn resend_verification(
    me: Authenticated,
    recovery: web::Data<Recovery>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    recovery.resend_verification(&me.user, &client).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: VERIFICATION_ASKED,
    }))
}
