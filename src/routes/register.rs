use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use super::json::{ApiJson, field_errors, parse_field};
use crate::accounts::{self, Draft, RegisterError};
use crate::audit::{self, Event};
use crate::client::Client;
use crate::domain::{Email, Owner, Password, Username};
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
        let owner = Owner {
            username: self.username.as_deref(),
            email: self.email.as_deref(),
        };
        let password = parse_field(&mut errors, "password", self.password.as_deref(), |value| {
            Password::parse(value, owner)
        });
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
    client: Client,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    super::reject_if_authenticated(&request, &state).await?;
    let username = body.username.clone();
    let audit =
        |event, user_id| audit::record(&state.pool, event, user_id, username.as_deref(), &client);
    if let Some(blocked) = state.throttle.registration(client.ip).await? {
        audit(Event::RegisterThrottled, None).await;
        return Err(ApiError::TooManyRequests(blocked.retry_after));
    }
    match accounts::register(&state.pool, &state.passwords, body.into_draft()).await {
        Ok(user) => {
            audit(Event::Register, Some(user.id)).await;
            Ok(HttpResponse::Created().json(user))
        }
        Err(RegisterError::Invalid(errors)) => Err(ApiError::Validation(errors)),
        Err(RegisterError::Store(error)) => Err(error.into()),
        Err(RegisterError::Hash(error)) => Err(ApiError::Internal(error.into())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::option::of;
    use proptest::prelude::*;

    use super::RegisterRequest;

    proptest! {
        /// Whatever the fields hold, validation reports or accepts; a draft
        /// with every field parsed has no errors, and the other way round.
        #[test]
        fn validation_never_panics(
            username in of(any::<String>()),
            email in of(any::<String>()),
            password in of(any::<String>()),
            password2 in of(any::<String>()),
        ) {
            let draft = RegisterRequest { username, email, password, password2 }.into_draft();
            let complete = draft.username.is_some() && draft.email.is_some() && draft.password.is_some();
            prop_assert!(complete || !draft.errors.is_empty());
        }
    }
}
