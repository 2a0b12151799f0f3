//! `POST /api/logout`: ends the sessions the request presents.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::Client;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;

/// Revokes every session a valid credential in the request names (a bearer
/// token and a cookie may name two), and clears the cookies. Anonymous
/// callers get the same 204: logging out is idempotent.
pub async fn logout(
    request: HttpRequest,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    for authenticated in auth.every_presented(&request).await? {
        auth.sessions
            .log_out(&authenticated.session, &client)
            .await?;
    }
    Ok(cookies.logged_out())
}
