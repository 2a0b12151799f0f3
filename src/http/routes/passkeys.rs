//! `/api/passkeys/...`: adding passkeys to an account, listing, renaming
//! and removing them, and logging in with one. Options and credentials are
//! WebAuthn's JSON forms, so a page passes them to
//! `PublicKeyCredential.parseCreationOptionsFromJSON()` and sends back
//! `credential.toJSON()` as they are.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::db::passkeys::StoredPasskey;
use crate::domain::{CeremonyId, Client, MfaToken, PasskeyId, REQUIRED, is_invisible};
use crate::http::auth::authenticate::{Auth, Authenticated};
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::http::routes::login::{logged_in_response, wanted};
use crate::http::routes::mfa::StepUpRequest;
use crate::services::login::Login;
use crate::services::passkeys::{Passkeys, Started};

/// A passkey as its owner sees it: a name and dates, never the key.
#[derive(Serialize)]
struct PasskeyView<'a> {
    id: &'a PasskeyId,
    name: &'a str,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a StoredPasskey> for PasskeyView<'a> {
    fn from(key: &'a StoredPasskey) -> Self {
        Self {
            id: &key.id,
            name: &key.name,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
        }
    }
}

/// A started ceremony: the id to finish it with, and the options for the
/// browser.
#[derive(Serialize)]
struct StartedView {
    challenge_id: String,
    #[serde(rename = "publicKey")]
    public_key: serde_json::Value,
}

impl From<Started> for StartedView {
    fn from(started: Started) -> Self {
        Self {
            challenge_id: started.challenge_id.expose().to_owned(),
            public_key: started.options,
        }
    }
}

/// Starts adding a passkey, confirmed by the password.
pub async fn start_passkey_registration(
    me: Authenticated,
    passkeys: web::Data<Passkeys>,
    client: Client,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let (password, code) = body.parts()?;
    let started = passkeys
        .start_registration(&me.user, &me.session.id, password, code, &client)
        .await?;
    Ok(HttpResponse::Ok().json(StartedView::from(started)))
}

#[derive(Deserialize, Validate)]
pub struct FinishRegistrationRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    challenge_id: String,
    name: Option<String>,
    credential: Option<RegisterPublicKeyCredential>,
}

/// Finishes adding a passkey: `201` with the new passkey.
pub async fn finish_passkey_registration(
    me: Authenticated,
    passkeys: web::Data<Passkeys>,
    client: Client,
    ApiJson(body): ApiJson<FinishRegistrationRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = check(&body);
    let name = match body.name.as_deref().map(parse_name).transpose() {
        Ok(name) => name,
        Err(message) => {
            crate::domain::add_error(&mut errors, "name", message);
            None
        }
    };
    if body.credential.is_none() {
        crate::domain::add_error(&mut errors, "credential", REQUIRED);
    }
    let (Some(credential), true) = (body.credential, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let added = passkeys
        .finish_registration(
            &me.user,
            &me.session.id,
            &CeremonyId::presented(body.challenge_id),
            name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            &credential,
            &client,
        )
        .await?;
    Ok(HttpResponse::Created().json(PasskeyView::from(&added)))
}

/// The account's passkeys, oldest first.
pub async fn list_passkeys(
    me: Authenticated,
    passkeys: web::Data<Passkeys>,
) -> Result<HttpResponse, ApiError> {
    let keys = passkeys.list(me.user.id).await?;
    let views: Vec<PasskeyView<'_>> = keys.iter().map(PasskeyView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[derive(Deserialize)]
pub struct RenameRequest {
    name: Option<String>,
}

/// Renames one of the account's passkeys.
pub async fn rename_passkey(
    me: Authenticated,
    passkeys: web::Data<Passkeys>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PasskeyId::parse(&id).ok_or(ApiError::NoSuchPasskey)?;
    let name = match body.name.as_deref() {
        None => Err(REQUIRED),
        Some(name) => parse_name(name),
    }
    .map_err(|message| ApiError::field("name", message))?;
    let renamed = passkeys.rename(me.user.id, id, name).await?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(&renamed)))
}

/// Removes one of the account's passkeys, confirmed by the password.
pub async fn remove_passkey(
    me: Authenticated,
    passkeys: web::Data<Passkeys>,
    id: web::Path<String>,
    client: Client,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PasskeyId::parse(&id).ok_or(ApiError::NoSuchPasskey)?;
    let (password, code) = body.parts()?;
    passkeys
        .remove(&me.user, id, password, code, &client)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct StartLoginRequest {
    /// For the second step of a password login: its `mfa_token`.
    mfa_token: Option<String>,
}

/// Starts a login with a passkey: with no `mfa_token`, options that let
/// the authenticator offer any passkey it holds; with one, options limited
/// to that login's account's passkeys.
pub async fn start_passkey_login(
    login: web::Data<Login>,
    passkeys: web::Data<Passkeys>,
    client: Client,
    ApiJson(body): ApiJson<StartLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = match body.mfa_token.filter(|token| !token.is_empty()) {
        Some(token) => {
            login
                .start_passkey_second_step(&MfaToken::presented(token), &client)
                .await?
        }
        None => passkeys.start_login(&client).await?,
    };
    Ok(HttpResponse::Ok().json(StartedView::from(started)))
}

#[derive(Deserialize, Validate)]
pub struct FinishLoginRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    challenge_id: String,
    credential: Option<PublicKeyCredential>,
    remember_me: Option<bool>,
    next: Option<String>,
}

/// Logs in with a passkey alone, answered as a password login is.
pub async fn finish_passkey_login(
    request: HttpRequest,
    login: web::Data<Login>,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    ApiJson(body): ApiJson<FinishLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_anonymous(&request).await?;
    let mut errors = check(&body);
    if body.credential.is_none() {
        crate::domain::add_error(&mut errors, "credential", REQUIRED);
    }
    let (Some(credential), true) = (body.credential, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let wanted = wanted(body.remember_me, body.next, &request);
    let logged_in = login
        .with_passkey(
            CeremonyId::presented(body.challenge_id),
            &credential,
            wanted,
            &client,
        )
        .await?;
    logged_in_response(&request, &auth, &cookies, logged_in, None)
}

/// What a passkey is called when its owner gives no name.
const DEFAULT_NAME: &str = "Passkey";

/// A passkey's name: spaces at the ends dropped, 1 to 64 characters, none
/// of them invisible but the plain space ("Work laptop").
fn parse_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim_matches(' ');
    if name.chars().any(|c| c != ' ' && is_invisible(c)) {
        Err("The name may not contain invisible or control characters.")
    } else if name.is_empty() || name.chars().count() > 64 {
        Err("The name must be 1 to 64 characters long.")
    } else {
        Ok(name.to_owned())
    }
}
