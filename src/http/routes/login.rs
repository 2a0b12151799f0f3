//! `POST /api/login` and its second step, `POST /api/login/mfa`: a password
//! (and, for an account with a second factor, a code) for a session, as a
//! cookie and a token.

use actix_identity::Identity;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::users::User;
use crate::domain::{CeremonyId, Client, MfaToken, NextPath, add_error};
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::{CookiePolicy, PersistSessionCookie};
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::login::{LoggedIn, Login, Proof, Wanted};
use webauthn_rs::prelude::PublicKeyCredential;

#[derive(Deserialize, Validate)]
pub struct LoginRequest {
    /// The username or the email address.
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    username: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    password: String,
    remember_me: Option<bool>,
    next: Option<String>,
}

#[derive(Serialize)]
struct LoginResponse<'a> {
    user: &'a User,
    access_token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    remember_me: bool,
    csrf_token: &'a str,
    next: &'a str,
    /// When the login set up the second factor (`MFA_REQUIRED`): its
    /// recovery codes, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

/// What a login asks for beyond its credentials: `remember_me`, and
/// `next` from the body, else from the query string, judged safe.
pub(super) fn wanted(
    remember_me: Option<bool>,
    next: Option<String>,
    request: &HttpRequest,
) -> Wanted {
    let next = next.or_else(|| {
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .find(|(key, _)| key == "next")
            .map(|(_, value)| value.into_owned())
    });
    Wanted {
        remember: remember_me.unwrap_or(false),
        next: NextPath::sanitise(next.as_deref()).as_str().to_owned(),
    }
}

pub async fn login(
    request: HttpRequest,
    login: web::Data<Login>,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_anonymous(&request).await?;
    let errors = check(&body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let wanted = wanted(body.remember_me, body.next, &request);
    let logged_in = login
        .log_in(body.username, body.password.into(), wanted, &client)
        .await?;
    logged_in_response(&request, &auth, &cookies, logged_in, None)
}

#[derive(Deserialize, Validate)]
pub struct SecondStepRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    mfa_token: String,
    /// A code from the authenticator app...
    code: Option<String>,
    /// ...or one of the recovery codes...
    recovery_code: Option<String>,
    /// ...or a passkey, for a ceremony started with this `mfa_token`.
    passkey: Option<PasskeyAnswer>,
}

#[derive(Deserialize)]
pub struct PasskeyAnswer {
    challenge_id: String,
    credential: Box<PublicKeyCredential>,
}

/// `POST /api/login/mfa`: the second step of a login, answered as the
/// login itself would have been.
pub async fn login_second_step(
    request: HttpRequest,
    login: web::Data<Login>,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    ApiJson(body): ApiJson<SecondStepRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_anonymous(&request).await?;
    let mut errors = check(&body);
    let given = |text: Option<String>| text.filter(|text| !text.is_empty());
    let proof = match (given(body.code), given(body.recovery_code), body.passkey) {
        (Some(code), None, None) | (None, Some(code), None) => Some(Proof::Code(code)),
        (None, None, Some(passkey)) => Some(Proof::Passkey {
            challenge_id: CeremonyId::presented(passkey.challenge_id),
            credential: passkey.credential,
        }),
        (None, None, None) => {
            add_error(&mut errors, "code", "This field is required.");
            None
        }
        _ => {
            add_error(
                &mut errors,
                "code",
                "Send one of code, recovery_code or passkey, not more.",
            );
            None
        }
    };
    let (Some(proof), true) = (proof, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let logged_in = login
        .second_step(MfaToken::presented(body.mfa_token), proof, &client)
        .await?;
    logged_in_response(&request, &auth, &cookies, logged_in, None)
}

/// A new session, as the client gets it: a cookie (persistent when
/// remembered) with its CSRF cookie, and a bearer token in the body (with
/// the recovery codes of a factor set up on the way).
pub(super) fn logged_in_response(
    request: &HttpRequest,
    auth: &Auth,
    cookies: &CookiePolicy,
    LoggedIn {
        user,
        session,
        wanted,
    }: LoggedIn,
    recovery_codes: Option<Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    // actix-identity renews the cookie session, so no identifier from before
    // the login survives it.
    Identity::login(&request.extensions(), session.token.expose().to_owned())
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("identity login: {error}")))?;
    let access_token = auth
        .tokens
        .issue(&session)
        .map_err(|error| ApiError::Internal(error.into()))?;

    let remember = wanted.remember;
    let lifetime = auth.sessions.lifetimes().for_login(remember);
    let csrf_token = session.csrf_token.expose();
    let mut response = HttpResponse::Ok();
    response.cookie(cookies.csrf(csrf_token, remember.then_some(lifetime)));
    if remember {
        response.extensions_mut().insert(PersistSessionCookie {
            name: cookies.session_cookie_name(),
            lifetime,
        });
    }
    Ok(response.json(LoginResponse {
        user: &user,
        access_token,
        token_type: "Bearer",
        expires_at: session.expires_at,
        remember_me: remember,
        csrf_token,
        next: &wanted.next,
        recovery_codes,
    }))
}
