use actix_web::{HttpRequest, HttpResponse, web};

use crate::audit::{self, Event};
use crate::auth;
use crate::client::Client;
use crate::error::ApiError;
use crate::sessions;
use crate::state::AppState;

/// Revokes the presented session on the server, so its cookie or token is
/// dead even if a client keeps a copy, and clears the cookies. Anonymous
/// callers get the same 204: logging out is idempotent.
pub async fn logout(
    request: HttpRequest,
    state: web::Data<AppState>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    if let Some(authenticated) = auth::authenticate(&request, &state).await? {
        sessions::revoke(&state.pool, authenticated.session.id).await?;
        let user = Some(authenticated.user.id);
        audit::record(&state.pool, Event::Logout, user, None, &client).await;
    }
    let mut response = HttpResponse::NoContent();
    // Also tells the browser to drop any cookie we did not name here.
    response.insert_header(("Clear-Site-Data", "\"cookies\""));
    for cookie in state.cookies.removals() {
        response.cookie(cookie);
    }
    Ok(response.finish())
}
