//! `POST /api/register`: a new account, with every field's problems at once.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use crate::domain::{Client, Email, Owner, Password, Username, add_error};
use crate::http::auth::authenticate::Auth;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, field_errors, parse_field};
use crate::services::accounts::{Accounts, NewAccount};

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
    fn into_new_account(self) -> NewAccount {
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
            add_error(&mut errors, "password2", "Field must be equal to password.");
        }
        NewAccount {
            submitted_username: self.username,
            username,
            email,
            password,
            errors,
        }
    }
}

pub async fn register(
    request: HttpRequest,
    accounts: web::Data<Accounts>,
    auth: web::Data<Auth>,
    client: Client,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_anonymous(&request).await?;
    let user = accounts.register(body.into_new_account(), &client).await?;
    Ok(HttpResponse::Created().json(user))
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
            let draft = RegisterRequest { username, email, password, password2 }.into_new_account();
            let complete = draft.username.is_some() && draft.email.is_some() && draft.password.is_some();
            prop_assert!(complete || !draft.errors.is_empty());
        }
    }
}
