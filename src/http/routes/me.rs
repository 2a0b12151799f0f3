//! `GET /api/me`: the logged-in user.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::db::users::User;
use crate::http::auth::authenticate::{CurrentUser, Via};

#[derive(Serialize)]
struct Me<'a> {
    #[serde(flatten)]
    user: &'a User,
    /// For cookie sessions: an SPA on another origin cannot read the
    /// `csrf_token` cookie after a reload, but it can read this (CORS lets
    /// only allowed origins see the response).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
}

pub async fn me(current: CurrentUser) -> HttpResponse {
    let authenticated = &current.0;
    HttpResponse::Ok().json(Me {
        user: &authenticated.user,
        csrf_token: (authenticated.via == Via::Cookie)
            .then_some(authenticated.session.csrf_token.as_str()),
    })
}
