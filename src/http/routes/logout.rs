//! `POST /api/logout`: ends the sessions the request presents, or, with a
//! `scope`, every other session of the user, or all of them.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::domain::Client;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;
use crate::http::json::OptionalJson;
use crate::services::sessions::Scope;

#[derive(Deserialize)]
pub struct LogoutRequest {
    scope: Option<Scope>,
}

/// `scope` from the body, else from the query string, else `local`. A
/// query that names no scope is refused even when the body names one.
fn requested_scope(body: Option<LogoutRequest>, request: &HttpRequest) -> Result<Scope, ApiError> {
    let query = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "scope")
        .map(|(_, value)| {
            Scope::parse(&value)
                .ok_or_else(|| ApiError::field("scope", "Must be `local`, `others` or `global`."))
        })
        .transpose()?;
    Ok(body
        .and_then(|body| body.scope)
        .or(query)
        .unwrap_or_default())
}

/// Revokes every session a valid credential in the request names (a bearer
/// token and a cookie may name two), or in scope `others` every other
/// session of the user, or in scope `global` all of them. The cookies are
/// cleared unless the request's own session lives on (`others`). Anonymous
/// callers get the same 204: logging out is idempotent.
pub async fn logout(
    request: HttpRequest,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let scope = requested_scope(body, &request)?;
    let presented = auth.every_presented(&request).await?;
    let sessions: Vec<_> = presented
        .iter()
        .map(|found| found.session.clone())
        .collect();
    auth.sessions
        .log_out_scoped(&sessions, scope, &client)
        .await?;
    if scope.ends_presented() || sessions.is_empty() {
        return Ok(cookies.logged_out());
    }
    Ok(HttpResponse::NoContent().finish())
}
