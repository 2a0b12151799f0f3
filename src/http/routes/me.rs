//! `/api/me`: the logged-in user, and changes to the account.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::users::User;
use crate::domain::{Client, Email, SessionId, Username, add_error, parse_field};
use crate::http::auth::authenticate::{Authenticated, Via};
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::accounts::{Accounts, ProfileChange};

#[derive(Serialize)]
struct Me<'a> {
    #[serde(flatten)]
    user: &'a User,
    /// The session that authenticated the request.
    session: CurrentSession<'a>,
    /// For cookie sessions: an SPA on another origin cannot read the
    /// `csrf_token` cookie after a reload, but it can read this (CORS lets
    /// only allowed origins see the response).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
    mfa: SecondFactor,
}

#[derive(Serialize)]
struct CurrentSession<'a> {
    /// Its public id, as `GET /api/sessions` lists it.
    id: &'a SessionId,
    expires_at: DateTime<Utc>,
    remember: bool,
    /// How it was made (`pwd`, `otp`, `recovery`, `passkey`).
    amr: Vec<&'a str>,
}

/// The account's second factors.
#[derive(Serialize)]
struct SecondFactor {
    totp: bool,
    recovery_codes_left: i32,
    /// How many passkeys the account has.
    passkeys: i32,
}

pub async fn me(me: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        user: &me.user,
        session: CurrentSession {
            id: &me.session.id,
            expires_at: me.session.expires_at,
            remember: me.session.remember,
            amr: me.session.methods(),
        },
        csrf_token: (me.via == Via::Cookie).then_some(me.session.csrf_token.expose()),
        mfa: SecondFactor {
            totp: me.user.totp_enabled,
            recovery_codes_left: me.user.recovery_codes_left,
            passkeys: me.user.passkey_count,
        },
    })
}

#[derive(Deserialize, Validate)]
pub struct UpdateRequest {
    username: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
    /// For an account with a second factor, when the address changes.
    code: Option<String>,
}

impl UpdateRequest {
    /// The change, with what does not parse noted for the service to
    /// report beside taken names; refused at once without the password
    /// that confirms it.
    fn into_change(self) -> Result<ProfileChange, ApiError> {
        let mut errors = check(&self);
        let username = parse_field(
            &mut errors,
            "username",
            self.username.as_deref(),
            Username::parse,
        );
        let email = parse_field(&mut errors, "email", self.email.as_deref(), Email::parse);
        if self.username.is_none() && self.email.is_none() {
            add_error(
                &mut errors,
                "body",
                "Send a username or an email to change.",
            );
        }
        if self.current_password.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(ProfileChange {
            username,
            email,
            errors,
            current_password: self.current_password.into(),
            code: self.code.map(Into::into),
        })
    }
}

/// Changes the username and/or email address by the registration rules,
/// confirmed by the current password; answers with the user.
pub async fn update_me(
    me: Authenticated,
    accounts: web::Data<Accounts>,
    client: Client,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = body.into_change()?;
    let user = accounts.update_profile(&me.user, change, &client).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize, Validate)]
pub struct DeleteRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    current_password: String,
    /// For an account with a second factor.
    code: Option<String>,
}

/// Deletes the account, confirmed by its password, with every session.
pub async fn delete_me(
    me: Authenticated,
    accounts: web::Data<Accounts>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    accounts
        .delete_account(&me.user, body.current_password.into(), body.code, &client)
        .await?;
    Ok(cookies.logged_out())
}
