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
use actix_web::http::header::{AUTHORIZATION, HOST, HeaderValue, ORIGIN, REFERER};
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
    if let Some(raw) = request.headers().get(AUTHORIZATION).and_then(bearer_token) {
        let claims = token::verify(&state.keys, raw)?;
        return Some(Claimed {
            session_id: claims.sid,
            user_id: Some(claims.sub.parse().ok()?),
            via: Via::Bearer,
        });
    }
    // Any other `Authorization` (say, Basic auth of a staging proxy) is not
    // ours and does not hide the cookie.
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
    let Some((session, user)) =
        sessions::find_live(&state.pool, state.lifetimes, claimed.session_id).await?
    else {
        return Ok(None);
    };
    if claimed.user_id.is_some_and(|id| id != user.id) {
        return Ok(None);
    }
    if claimed.via == Via::Cookie && !request.method().is_safe() {
        // Belt and braces: a browser says where a request comes from.
        if !same_or_allowed_origin(request, state.public_origin.as_deref(), &state.cors_origins) {
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

/// True unless the request's `Origin` (or, lacking it, `Referer`) names a
/// site other than this one (`PUBLIC_URL`, or the Host header) or an
/// allowed CORS origin. Requests that send
/// neither (curl, native apps) are left to the CSRF token.
fn same_or_allowed_origin(request: &HttpRequest, public: Option<&str>, allowed: &[String]) -> bool {
    let headers = request.headers();
    let source = match (headers.get(ORIGIN), headers.get(REFERER)) {
        (Some(origin), _) => origin.to_str().ok().map(str::to_owned),
        (None, Some(referer)) => referer
            .to_str()
            .ok()
            .and_then(|referer| url::Url::parse(referer).ok())
            .map(|url| url.origin().ascii_serialization()),
        (None, None) => return true,
    };
    // An unreadable source, or the opaque origin `null`, is foreign.
    let Some(source) = source.and_then(|source| url::Url::parse(&source).ok()) else {
        return false;
    };
    let origin = source.origin().ascii_serialization();
    if allowed.contains(&origin) {
        return true;
    }
    if let Some(public) = public {
        return origin == public;
    }
    // Without PUBLIC_URL, the API's own origin is judged by host and port
    // against the Host header the browser sent, which a cross-site page
    // cannot set (behind a proxy that rewrites Host, set PUBLIC_URL).
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok());
    let (Some(host), Some(source_host)) = (host, source.host_str()) else {
        return false;
    };
    // `Url` leaves a scheme's default port out; so must the Host header.
    let source_authority = match source.port() {
        Some(port) => format!("{source_host}:{port}"),
        None => source_host.to_owned(),
    };
    let default_port = match source.scheme() {
        "https" => ":443",
        _ => ":80",
    };
    let host = host.strip_suffix(default_port).unwrap_or(host);
    host.eq_ignore_ascii_case(&source_authority)
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
