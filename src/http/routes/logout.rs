//! `POST /api/logout`: ends the session the request presents.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::Client;
use crate::http::auth::authenticate::Auth;
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;

/// Revokes the presented session on the server and clears the cookies.
/// Anonymous callers get the same 204: logging out is idempotent.
pub async fn logout(
    request: HttpRequest,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    if let Some(authenticated) = auth.authenticate(&request).await? {
        auth.sessions
            .log_out(&authenticated.session, &client)
            .await?;
    }
    let mut response = HttpResponse::NoContent();
    // Also tells the browser to drop any cookie we did not name here.
    response.insert_header(("Clear-Site-Data", "\"cookies\""));
    for cookie in cookies.removals() {
        response.cookie(cookie);
    }
    Ok(response.finish())
}
