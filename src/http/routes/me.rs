//! `/api/me`: the logged-in user, and changes to the account.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::users::User;
use crate::domain::{Client, Email, FieldErrors, Username};
use crate::http::auth::authenticate::{CurrentUser, Via};
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, parse_field, required};
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
}

#[derive(Serialize)]
struct CurrentSession<'a> {
    /// Its public id, as `GET /api/sessions` lists it.
    id: &'a str,
    expires_at: DateTime<Utc>,
    remember: bool,
}

pub async fn me(current: CurrentUser) -> HttpResponse {
    let me = &current.0;
    HttpResponse::Ok().json(Me {
        user: &me.user,
        session: CurrentSession {
            id: &me.session.public_id,
            expires_at: me.session.expires_at,
            remember: me.session.remember,
        },
        csrf_token: (me.via == Via::Cookie).then_some(me.session.csrf_token.as_str()),
    })
}

#[derive(Deserialize)]
pub struct UpdateRequest {
    username: Option<String>,
    email: Option<String>,
    current_password: Option<String>,
}

impl UpdateRequest {
    fn into_change(self) -> Result<ProfileChange, ApiError> {
        let mut errors = FieldErrors::new();
        let current = required(
            &mut errors,
            "current_password",
            self.current_password.as_deref(),
        )
        .map(|password| password.to_owned().into());
        let username = parse_field(
            &mut errors,
            "username",
            self.username.as_deref(),
            Username::parse,
        );
        let email = parse_field(&mut errors, "email", self.email.as_deref(), Email::parse);
        if self.username.is_none() && self.email.is_none() {
            crate::domain::add_error(
                &mut errors,
                "body",
                "Send a username or an email to change.",
            );
        }
        match current {
            Some(current_password) => Ok(ProfileChange {
                username,
                email,
                errors,
                current_password,
            }),
            None => Err(ApiError::Validation(errors)),
        }
    }
}

/// Changes the username and/or email address by the registration rules,
/// confirmed by the current password; answers with the user.
pub async fn update_me(
    current: CurrentUser,
    accounts: web::Data<Accounts>,
    client: Client,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = body.into_change()?;
    let user = accounts
        .update_profile(&current.0.user, change, &client)
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize)]
pub struct DeleteRequest {
    current_password: Option<String>,
}

/// Deletes the account, confirmed by its password, with every session.
pub async fn delete_me(
    current: CurrentUser,
    accounts: web::Data<Accounts>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let Some(password) = required(
        &mut errors,
        "current_password",
        body.current_password.as_deref(),
    ) else {
        return Err(ApiError::Validation(errors));
    };
    accounts
        .delete_account(&current.0.user, password.to_owned().into(), &client)
        .await?;
    Ok(cookies.logged_out())
}
