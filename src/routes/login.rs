use actix_identity::Identity;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::json::{ApiJson, field_errors};
use crate::accounts::{self, LoginError};
use crate::auth::cookies::PersistSessionCookie;
use crate::auth::token;
use crate::client::Client;
use crate::domain::NextPath;
use crate::error::ApiError;
use crate::models::User;
use crate::state::AppState;

#[derive(Deserialize, Validate)]
pub struct LoginRequest {
    /// The username or the email address.
    #[validate(
        required(message = "This field is required."),
        length(min = 1, message = "This field is required.")
    )]
    username: Option<String>,
    #[validate(
        required(message = "This field is required."),
        length(min = 1, message = "This field is required.")
    )]
    password: Option<String>,
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
}

/// `next` from the body, else from the query string.
fn requested_next(body: Option<String>, request: &HttpRequest) -> Option<String> {
    body.or_else(|| {
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .find(|(key, _)| key == "next")
            .map(|(_, value)| value.into_owned())
    })
}

pub async fn login(
    request: HttpRequest,
    state: web::Data<AppState>,
    client: Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    super::reject_if_authenticated(&request, &state).await?;
    let report = body.validate();
    let (Ok(()), Some(identifier), Some(password)) = (&report, body.username, body.password) else {
        return Err(ApiError::Validation(field_errors(report)));
    };
    let next = NextPath::sanitise(requested_next(body.next, &request).as_deref());
    let remember = body.remember_me.unwrap_or(false);

    let (user, session) = accounts::log_in(&state, identifier, password, remember, &client)
        .await
        .map_err(|error| match error {
            LoginError::InvalidCredentials { .. } => ApiError::InvalidCredentials,
            LoginError::Inactive { .. } => ApiError::InactiveAccount,
            LoginError::Throttled(blocked) => ApiError::TooManyRequests(blocked.retry_after),
            LoginError::Store(error) => error.into(),
        })?;

    // actix-identity renews the cookie session, so no identifier from before
    // the login survives it.
    Identity::login(&request.extensions(), session.id.clone())
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("identity login: {error}")))?;
    let access_token =
        token::issue(&state.keys, &session).map_err(|error| ApiError::Internal(error.into()))?;

    let lifetime = state.lifetimes.for_login(remember);
    let mut response = HttpResponse::Ok();
    response.cookie(
        state
            .cookies
            .csrf(&session.csrf_token, remember.then_some(lifetime)),
    );
    if remember {
        response.extensions_mut().insert(PersistSessionCookie {
            name: state.cookies.session_cookie_name(),
            lifetime,
        });
    }
    Ok(response.json(LoginResponse {
        user: &user,
        access_token,
        token_type: "Bearer",
        expires_at: session.expires_at,
        remember_me: remember,
        csrf_token: &session.csrf_token,
        next: next.as_str(),
    }))
}
