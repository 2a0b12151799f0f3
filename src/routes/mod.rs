//! HTTP handlers: thin adapters from requests to the account and session
//! functions, and back to JSON.

mod health;
mod json;
mod login;
mod logout;
mod me;
mod openapi;
mod register;

pub use health::{healthz, readyz};
pub use json::MAX_BODY_BYTES;
pub use login::login;
pub use logout::logout;
pub use me::me;
pub use openapi::openapi;
pub use register::register;

use actix_web::HttpRequest;

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Register and login are for anonymous clients: one that is already logged
/// in gets 409 instead of a second, silent login.
async fn reject_if_authenticated(request: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    match auth::authenticate(request, state).await? {
        Some(_) => Err(ApiError::AlreadyAuthenticated),
        None => Ok(()),
    }
}

pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
