//! Matching a request to a live session: which credential it presents, and
//! whether the session it names is still live.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_identity::IdentityExt;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};

use crate::domain::{SessionToken, UserId};
use crate::http::auth::token::TokenKeys;
use crate::http::error::ApiError;
use crate::services::sessions::{LiveSession, Sessions};

pub const CSRF_HEADER: &str = "X-CSRF-Token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// A request matched to a live session: the session and its user (through
/// `Deref`: `authenticated.user`, `authenticated.session`), and how the
/// credential travelled. Also the extractor for handlers behind
/// [`login_required`](crate::http::auth::middleware::login_required): a
/// handler that takes one is only reached by a logged-in request.
#[derive(Clone, Debug)]
pub struct Authenticated {
    live: Arc<LiveSession>,
    pub via: Via,
}

impl Deref for Authenticated {
    type Target = LiveSession;

    fn deref(&self) -> &LiveSession {
        &self.live
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only if a handler's route is not wrapped in login_required.
        ready(
            request
                .extensions()
                .get::<Self>()
                .cloned()
                .ok_or(ApiError::Unauthenticated),
        )
    }
}

/// The session a request claims, before the database has a say.
struct Claimed {
    token: SessionToken,
    user_id: Option<UserId>,
    via: Via,
}

/// What it takes to authenticate a request; registered as app data for
/// [`login_required`](crate::http::auth::middleware::login_required) and the
/// handlers that check credentials themselves.
pub struct Auth {
    pub sessions: Sessions,
    pub tokens: TokenKeys,
}

impl Auth {
    /// Matches the request to a live session: `Ok(None)` when it presents
    /// no credential or one that is invalid, expired or revoked. A bearer
    /// token, when the request sends one, wins over the cookie: it is the
    /// more explicit of the two. A cookie-carried session on an unsafe
    /// method must also present its CSRF token.
    pub async fn authenticate(
        &self,
        request: &HttpRequest,
    ) -> Result<Option<Authenticated>, ApiError> {
        self.authenticate_as(request, !request.method().is_safe())
            .await
    }

    /// [`Auth::authenticate`] for a request that stands for another, whose
    /// method (`unsafe_method`) decides whether a cookie needs its CSRF
    /// token: a forward-auth check on behalf of a proxied request.
    pub async fn authenticate_as(
        &self,
        request: &HttpRequest,
        unsafe_method: bool,
    ) -> Result<Option<Authenticated>, ApiError> {
        // A token that fails verification still hides the cookie: the
        // request is anonymous, not silently authenticated another way.
        let claimed = match bearer_token(request) {
            Some(raw) => self.bearer(raw),
            None => self.cookie(request),
        };
        match claimed {
            Some(claimed) => self.check(request, claimed, unsafe_method).await,
            None => Ok(None),
        }
    }

    /// Every live session a credential in the request names, each checked
    /// on its own: for logout, which must end them all rather than stop at
    /// the first (a stale token beside a live cookie must not leave the
    /// cookie's session alive). A cookie session failing its CSRF check
    /// refuses the whole request.
    pub async fn every_presented(
        &self,
        request: &HttpRequest,
    ) -> Result<Vec<Authenticated>, ApiError> {
        let mut found: Vec<Authenticated> = Vec::new();
        let bearer = bearer_token(request).and_then(|raw| self.bearer(raw));
        for claimed in [bearer, self.cookie(request)].into_iter().flatten() {
            // A cookie naming the session a valid token already named adds
            // nothing, and needs no CSRF token of its own.
            if found.iter().any(|f| f.session.token == claimed.token) {
                continue;
            }
            let unsafe_method = !request.method().is_safe();
            if let Some(authenticated) = self.check(request, claimed, unsafe_method).await? {
                found.push(authenticated);
            }
        }
        Ok(found)
    }

    async fn check(
        &self,
        request: &HttpRequest,
        claimed: Claimed,
        unsafe_method: bool,
    ) -> Result<Option<Authenticated>, ApiError> {
        let Some(live) = self.sessions.validate(claimed.token).await? else {
            return Ok(None);
        };
        if claimed.user_id.is_some_and(|id| id != live.user.id) {
            return Ok(None);
        }
        if claimed.via == Via::Cookie && unsafe_method {
            let sent = request
                .headers()
                .get(CSRF_HEADER)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            if !live.session.csrf_token.matches(sent) {
                return Err(ApiError::CsrfFailed);
            }
        }
        Ok(Some(Authenticated {
            live,
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

    /// The session a bearer token names, if it is a valid one.
    fn bearer(&self, raw: &str) -> Option<Claimed> {
        let claims = self.tokens.verify(raw)?;
        Some(Claimed {
            token: SessionToken::presented(claims.sid),
            user_id: Some(claims.sub.parse().ok()?),
            via: Via::Bearer,
        })
    }

    /// The session the session cookie names, if the request sends one.
    fn cookie(&self, request: &HttpRequest) -> Option<Claimed> {
        let identity = request.get_identity().ok()?;
        Some(Claimed {
            token: SessionToken::presented(identity.id().ok()?),
            user_id: None,
            via: Via::Cookie,
        })
    }
}

/// The token of the request's `Authorization: Bearer`, if it sends one.
/// Any other `Authorization` (say, Basic auth of a staging proxy) is not
/// ours. Only ASCII is a token: nothing non-ASCII is trimmed or matched.
/// (Checked with `is_ascii`, which reads words at a time; `to_str` checks a
/// byte at a time, and a token is hundreds of them, on every request.)
fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.as_bytes();
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|value| value.is_ascii())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
