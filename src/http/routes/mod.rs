//! HTTP handlers: thin adapters from requests to the services, and back to
//! JSON. One file per resource; the route table is in [`crate::http::app`].

mod auth_check;
mod health;
mod login;
mod logout;
mod me;
mod mfa;
mod openapi;
mod passkeys;
mod password;
mod recovery;
mod register;
mod sessions;

pub use auth_check::auth_check;
pub use health::{Draining, healthz, readyz};
pub use login::{login, login_second_step};
pub use logout::logout;
pub use me::{delete_me, me, update_me};
pub use mfa::{confirm_totp, disable_totp, regenerate_recovery_codes, start_totp};
pub use openapi::openapi;
pub use passkeys::{
    finish_passkey_login, finish_passkey_registration, list_passkeys, remove_passkey,
    rename_passkey, start_passkey_login, start_passkey_registration,
};
pub use password::change_password;
pub use recovery::{forgot_password, resend_verification, reset_password, verify_email};
pub use register::register;
pub use sessions::{end_session, list_sessions};

use crate::http::error::ApiError;

pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
