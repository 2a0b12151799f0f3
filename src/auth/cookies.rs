//! The browser side of a session: actix-session's encrypted cookie holding
//! actix-identity's session id, and the readable CSRF cookie beside it.
//!
//! actix-session fixes a cookie's lifetime per middleware, but remember-me
//! is chosen per login. So the session cookie is a browser-session cookie,
//! and [`persist_remembered`] gives it a `Max-Age` on the one response that
//! sets it for a remembered login. Nothing else rewrites that cookie later:
//! the session state never changes after login.

use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key, SameSite, time};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::middleware::Next;

pub const SESSION_COOKIE: &str = "authd_session";
pub const CSRF_COOKIE: &str = "csrf_token";

#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
}

/// Put in a response's extensions to make its session cookie persistent.
#[derive(Clone, Copy, Debug)]
pub struct PersistSessionCookie(pub Duration);

impl CookiePolicy {
    pub fn session_middleware(&self, key: Key) -> SessionMiddleware<CookieSessionStore> {
        SessionMiddleware::builder(CookieSessionStore::default(), key)
            .cookie_name(SESSION_COOKIE.into())
            .cookie_content_security(CookieContentSecurity::Private)
            .cookie_secure(self.secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_path("/".into())
            .session_lifecycle(BrowserSession::default())
            .build()
    }

    /// Readable by the SPA's JavaScript (not `HttpOnly`), so it can echo the
    /// token in `X-CSRF-Token` after a reload; persistent when the login is.
    pub fn csrf(&self, token: &str, persist_for: Option<Duration>) -> Cookie<'static> {
        let mut cookie = self.base(CSRF_COOKIE, token.to_owned());
        cookie.set_http_only(false);
        if let Some(lifetime) = persist_for {
            cookie.set_max_age(max_age(lifetime));
        }
        cookie
    }

    /// Cookies that delete both of ours.
    pub fn removals(&self) -> [Cookie<'static>; 2] {
        [SESSION_COOKIE, CSRF_COOKIE].map(|name| {
            let mut cookie = self.base(name, String::new());
            cookie.make_removal();
            cookie
        })
    }

    fn base(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .secure(self.secure)
            .http_only(true)
            .same_site(SameSite::Lax)
            .finish()
    }
}

fn max_age(lifetime: Duration) -> time::Duration {
    time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX))
}

/// Wraps the session middleware: gives the session cookie a `Max-Age` when
/// the handler asked for it with [`PersistSessionCookie`].
pub async fn persist_remembered(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    let persist = response
        .response()
        .extensions()
        .get::<PersistSessionCookie>()
        .copied();
    if let Some(PersistSessionCookie(lifetime)) = persist {
        let headers = response.headers_mut();
        let rewritten: Vec<HeaderValue> = headers
            .get_all(SET_COOKIE)
            .map(|value| with_max_age(value, lifetime).unwrap_or_else(|| value.clone()))
            .collect();
        headers.remove(SET_COOKIE);
        for value in rewritten {
            headers.append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

fn with_max_age(value: &HeaderValue, lifetime: Duration) -> Option<HeaderValue> {
    let mut cookie = Cookie::parse(value.to_str().ok()?).ok()?;
    if cookie.name() != SESSION_COOKIE {
        return None;
    }
    cookie.set_max_age(max_age(lifetime));
    HeaderValue::from_str(&cookie.to_string()).ok()
}
