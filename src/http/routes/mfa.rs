//! `/api/mfa/...`: turning the second factor (a TOTP authenticator) on and
//! off, and renewing its recovery codes.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::domain::Client;
use crate::http::auth::authenticate::Authenticated;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::mfa::Mfa;

#[derive(Deserialize, Validate)]
pub struct PasswordRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
}

#[derive(Serialize)]
struct EnrolmentView {
    secret: String,
    otpauth_uri: String,
}

/// Starts (or restarts) enrolment: a new secret, shown this once, that
/// does nothing until a code from it is confirmed.
pub async fn start_totp(
    me: Authenticated,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let enrolment = mfa
        .start_totp(&me.user, body.current_password.into(), &client)
        .await?;
    Ok(HttpResponse::Ok().json(EnrolmentView {
        secret: enrolment.secret,
        otpauth_uri: enrolment.uri,
    }))
}

#[derive(Deserialize, Validate)]
pub struct CodeRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    code: String,
}

#[derive(Serialize)]
struct RecoveryCodesView {
    recovery_codes: Vec<String>,
}

/// Confirms the pending enrolment with a code from it: the factor is on,
/// and the recovery codes are shown this once.
pub async fn confirm_totp(
    me: Authenticated,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let recovery_codes = mfa.confirm_totp(me.user.id, &body.code, &client).await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesView { recovery_codes }))
}

#[derive(Deserialize, Validate)]
pub struct StepUpRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
    /// A TOTP code or a recovery code.
    code: Option<String>,
}

impl StepUpRequest {
    fn parts(self) -> Result<(secrecy::SecretString, Option<String>), ApiError> {
        let errors = check(&self);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok((self.current_password.into(), self.code))
    }
}

/// Turns the second factor off, with its recovery codes.
pub async fn disable_totp(
    me: Authenticated,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let (password, code) = body.parts()?;
    mfa.disable(&me.user, password, code, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new set of recovery codes; the old set stops working.
pub async fn regenerate_recovery_codes(
    me: Authenticated,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let (password, code) = body.parts()?;
    let recovery_codes = mfa.regenerate_codes(&me.user, password, code, &client).await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesView { recovery_codes }))
}
