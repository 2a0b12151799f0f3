//! Matching a request to a live session: which credential it presents, and
//! whether the session it names is still live.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_identity::IdentityExt;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use subtle::ConstantTimeEq;

use crate::db::sessions::Session;
use crate::db::users::User;
use crate::http::auth::origin::OriginPolicy;
use crate::http::auth::token::TokenKeys;
use crate::http::error::ApiError;
use crate::services::sessions::Sessions;

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

/// What it takes to authenticate a request; registered as app data for
/// [`login_required`](crate::http::auth::middleware::login_required) and the
/// handlers that check credentials themselves.
pub struct Auth {
    pub sessions: Sessions,
    pub tokens: TokenKeys,
    pub origins: OriginPolicy,
}

impl Auth {
    /// Matches the request to a live session: `Ok(None)` when it presents
    /// no credential or one that is invalid, expired or revoked. A
    /// cookie-carried session on an unsafe method must also present its
    /// CSRF token.
    pub async fn authenticate(
        &self,
        request: &HttpRequest,
    ) -> Result<Option<Authenticated>, ApiError> {
        let Some(claimed) = self.claimed(request) else {
            return Ok(None);
        };
        let Some((session, user)) = self.sessions.validate(claimed.session_id).await? else {
            return Ok(None);
        };
        if claimed.user_id.is_some_and(|id| id != user.id) {
            return Ok(None);
        }
        if claimed.via == Via::Cookie && !request.method().is_safe() {
            // Belt and braces: a browser says where a request comes from.
            if !self.origins.allows(request) {
                return Err(ApiError::ForeignOrigin);
            }
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

    /// Register and login are for anonymous clients: one that is already
    /// logged in gets 409 instead of a second, silent login.
    pub async fn require_anonymous(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match self.authenticate(request).await? {
            Some(_) => Err(ApiError::AlreadyAuthenticated),
            None => Ok(()),
        }
    }

    /// A bearer token, when the request sends one, wins over the cookie: it
    /// is the more explicit of the two and needs no CSRF token. A credential
    /// that fails any check makes the request anonymous.
    fn claimed(&self, request: &HttpRequest) -> Option<Claimed> {
        if let Some(raw) = request.headers().get(AUTHORIZATION).and_then(bearer_token) {
            let claims = self.tokens.verify(raw)?;
            return Some(Claimed {
                session_id: claims.sid,
                user_id: Some(claims.sub.parse().ok()?),
                via: Via::Bearer,
            });
        }
        // Any other `Authorization` (say, Basic auth of a staging proxy) is
        // not ours and does not hide the cookie.
        let identity = request.get_identity().ok()?;
        Some(Claimed {
            session_id: identity.id().ok()?,
            user_id: None,
            via: Via::Cookie,
        })
    }
}

fn bearer_token(header: &HeaderValue) -> Option<&str> {
    let value = header.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The logged-in user and session, for handlers behind
/// [`login_required`](crate::http::auth::middleware::login_required).
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
