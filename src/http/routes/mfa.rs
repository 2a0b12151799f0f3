//! `/api/mfa/...`: turning the second factor (a TOTP authenticator) on and
//! off, and renewing its recovery codes. Under `MFA_REQUIRED`, setting it
//! up is also the end of a login, with the login's `mfa_token`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::domain::{Client, MfaToken};
use crate::http::auth::authenticate::{Auth, Authenticated};
use crate::http::auth::cookies::CookiePolicy;
use crate::http::auth::middleware::logged_in;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::http::routes::login::logged_in_response;
use crate::services::login::Login;
use crate::services::mfa::Mfa;

#[derive(Deserialize, Validate)]
pub struct StartRequest {
    /// From a logged-in owner: the current password.
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
    /// Or, under `MFA_REQUIRED`, instead of a session: the `mfa_token` of a
    /// login that must set up a factor first. The token stands in for the
    /// password: only a request without one is checked for it.
    mfa_token: Option<String>,
}

impl StartRequest {
    /// The logged-in owner's password, once the body passes its checks.
    fn current_password(self) -> Result<secrecy::SecretString, ApiError> {
        let errors = check(&self);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(self.current_password.into())
    }
}

#[derive(Serialize)]
struct EnrolmentView {
    secret: String,
    otpauth_uri: String,
}

/// Starts (or restarts) enrolment: a new secret, shown this once, that
/// does nothing until a code from it is confirmed. Either for the logged-in
/// owner, confirmed by the password, or for the login an enrolment's
/// `mfa_token` stands for.
pub async fn start_totp(
    request: HttpRequest,
    auth: web::Data<Auth>,
    login: web::Data<Login>,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<HttpResponse, ApiError> {
    let enrolment = match body.mfa_token {
        Some(token) => {
            // A token stands in for a session: never beside one.
            auth.require_anonymous(&request).await?;
            let user = login
                .enrolment_account(&MfaToken::presented(token), &client)
                .await?;
            mfa.begin_totp(&user).await?
        }
        None => {
            let me = logged_in(&auth, &request).await?;
            let password = body.current_password()?;
            mfa.start_totp(&me.user, password, &client).await?
        }
    };
    Ok(HttpResponse::Ok().json(EnrolmentView {
        secret: enrolment.secret,
        otpauth_uri: enrolment.uri,
    }))
}

#[derive(Deserialize, Validate)]
pub struct ConfirmRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    code: String,
    /// As for [`StartRequest`]: instead of a session.
    mfa_token: Option<String>,
}

impl ConfirmRequest {
    /// The code, once the body passes its checks: with a token or a
    /// session alike.
    fn code(&self) -> Result<&str, ApiError> {
        let errors = check(self);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(&self.code)
    }
}

#[derive(Serialize)]
struct RecoveryCodesView {
    recovery_codes: Vec<String>,
}

/// Confirms the pending enrolment with a code from it: the factor is on,
/// and the recovery codes are shown this once. With an enrolment's
/// `mfa_token`, it also finishes that login, answered as a login is.
pub async fn confirm_totp(
    request: HttpRequest,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    login: web::Data<Login>,
    mfa: web::Data<Mfa>,
    client: Client,
    ApiJson(body): ApiJson<ConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &body.mfa_token {
        auth.require_anonymous(&request).await?;
        let code = body.code()?;
        let token = MfaToken::presented(token.clone());
        let (logged_in, codes) = login.confirm_enrolment(token, code, &client).await?;
        return logged_in_response(&request, &auth, &cookies, logged_in, Some(codes));
    }
    let me = logged_in(&auth, &request).await?;
    let code = body.code()?;
    let recovery_codes = mfa.confirm_totp(me.user.id, code, &client).await?;
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
    /// The password and the code, or what is missing.
    pub(super) fn parts(self) -> Result<(secrecy::SecretString, Option<String>), ApiError> {
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
    let recovery_codes = mfa
        .regenerate_codes(&me.user, password, code, &client)
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesView { recovery_codes }))
}
