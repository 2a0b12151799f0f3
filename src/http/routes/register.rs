//! `POST /api/register`: a new account, with every field's problems at once.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use crate::domain::Client;
use crate::http::auth::authenticate::Auth;
use crate::http::error::ApiError;
use crate::http::json::{ApiJson, check, text};
use crate::services::accounts::{Accounts, NewAccount};

#[derive(Deserialize, Validate)]
pub struct RegisterRequest {
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    username: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    email: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(length(min = 1, message = "This field is required."))]
    password: String,
    #[serde(default, deserialize_with = "text")]
    #[validate(
        length(min = 1, message = "This field is required."),
        must_match(other = "password", message = "Field must be equal to password.")
    )]
    password2: String,
}

impl RegisterRequest {
    /// The account by the registration rules (the command line's too),
    /// with what the request's own rules found beside; taken names are the
    /// service's to add.
    fn into_new_account(self) -> NewAccount {
        let errors = check(&self);
        fn given(value: &str) -> Option<&str> {
            (!value.is_empty()).then_some(value)
        }
        let mut account = NewAccount::parse(
            given(&self.username),
            given(&self.email),
            given(&self.password),
        );
        for (field, messages) in errors {
            account.errors.entry(field).or_default().extend(messages);
        }
        account.submitted_username = Some(self.username);
        account
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
    use proptest::prelude::*;

    use super::RegisterRequest;

    proptest! {
        /// Whatever the fields hold, validation reports or accepts; a draft
        /// with every field parsed has no errors, and the other way round.
        #[test]
        fn validation_never_panics(
            username in any::<String>(),
            email in any::<String>(),
            password in any::<String>(),
            password2 in any::<String>(),
        ) {
            let draft = RegisterRequest { username, email, password, password2 }.into_new_account();
            let complete = draft.username.is_some() && draft.email.is_some() && draft.password.is_some();
            prop_assert!(complete || !draft.errors.is_empty());
        }
    }
}
