//! How a session travels over HTTP (an encrypted cookie or a bearer token)
//! and how a request is matched to one. [`authenticate`] is the one check
//! every route goes through, whether behind [`middleware::login_required`]
//! or, for login and logout, called directly.

pub mod cookies;
pub mod keys;
pub mod middleware;
pub mod token;

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_identity::IdentityExt;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::models::{Session, User};
use crate::sessions;
use crate::state::AppState;

pub const CSRF_HEADER: &str = "X-CSRF-Token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// A request matched to a live session.
#[derive(Debug)]
pub struct Authenticated {
    pub user: User,
    pub session: Session,
    pub via: Via,
}

/// The session a request claims, before the database has a say.
struct Claimed {
    session_id: String,
    user_id: Option<i64>,
    via: Via,
}

/// A bearer token, when the request sends one, wins over the cookie: it is
/// the more explicit of the two and needs no CSRF token. A credential that
/// fails any check makes the request anonymous.
fn claimed(request: &HttpRequest, state: &AppState) -> Option<Claimed> {
    if let Some(header) = request.headers().get(AUTHORIZATION) {
        let claims = bearer_token(header).and_then(|raw| token::verify(&state.keys, raw))?;
        return Some(Claimed {
            session_id: claims.sid,
            user_id: Some(claims.sub.parse().ok()?),
            via: Via::Bearer,
        });
    }
    let session_id = request.get_identity().ok()?.id().ok()?;
    Some(Claimed {
        session_id,
        user_id: None,
        via: Via::Cookie,
    })
}

fn bearer_token(header: &HeaderValue) -> Option<&str> {
    let value = header.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Matches the request to a live session: `Ok(None)` when it presents no
/// credential or one that is invalid, expired or revoked. A cookie-carried
/// session on an unsafe method must also present its CSRF token.
pub async fn authenticate(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Option<Authenticated>, ApiError> {
    let Some(claimed) = claimed(request, state) else {
        return Ok(None);
    };
    let Some((session, user)) = sessions::find_live(&state.pool, claimed.session_id).await? else {
        return Ok(None);
    };
    if claimed.user_id.is_some_and(|id| id != user.id) {
        return Ok(None);
    }
    if claimed.via == Via::Cookie && !request.method().is_safe() {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
            return Err(ApiError::CsrfFailed);
        }
    }
    Ok(Some(Authenticated {
        user,
        session,
        via: claimed.via,
    }))
}

/// The logged-in user and session, for handlers behind
/// [`middleware::login_required`].
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Rc<Authenticated>);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only if a handler is mounted outside the protected scope.
        ready(
            request
                .extensions()
                .get::<Rc<Authenticated>>()
                .cloned()
                .map(CurrentUser)
                .ok_or(ApiError::Unauthenticated),
        )
    }
}
