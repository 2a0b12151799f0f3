use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use super::json::{ApiJson, field_errors, parse_field};
use crate::accounts::{self, Draft, RegisterError};
use crate::domain::{Email, Password, Username};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize, Validate)]
pub struct RegisterRequest {
    #[validate(required(message = "This field is required."))]
    username: Option<String>,
    #[validate(required(message = "This field is required."))]
    email: Option<String>,
    #[validate(required(message = "This field is required."))]
    password: Option<String>,
    #[validate(required(message = "This field is required."))]
    password2: Option<String>,
}

impl RegisterRequest {
    fn into_draft(self) -> Draft {
        let mut errors = field_errors(self.validate());
        let username = parse_field(
            &mut errors,
            "username",
            self.username.as_deref(),
            Username::parse,
        );
        let email = parse_field(&mut errors, "email", self.email.as_deref(), Email::parse);
        let password = parse_field(
            &mut errors,
            "password",
            self.password.as_deref(),
            Password::parse,
        );
        if let (Some(first), Some(second)) = (&self.password, &self.password2)
            && first != second
        {
            errors
                .entry("password2".into())
                .or_default()
                .push("Field must be equal to password.".into());
        }
        Draft {
            username,
            email,
            password,
            errors,
        }
    }
}

pub async fn register(
    request: HttpRequest,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    super::reject_if_authenticated(&request, &state).await?;
    match accounts::register(&state.pool, &state.passwords, body.into_draft()).await {
        Ok(user) => Ok(HttpResponse::Created().json(user)),
        Err(RegisterError::Invalid(errors)) => Err(ApiError::Validation(errors)),
        Err(RegisterError::Store(error)) => Err(error.into()),
        Err(RegisterError::Hash(error)) => Err(ApiError::Internal(error.into())),
    }
}
