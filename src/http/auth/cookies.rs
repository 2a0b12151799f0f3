//! The browser side of a session: actix-session's encrypted cookie holding
//! actix-identity's session id, and the readable CSRF cookie beside it.
//!
//! actix-session fixes a cookie's lifetime per middleware, but remember-me
//! is chosen per login. So the session cookie is a browser-session cookie,
//! and [`persist_remembered`] gives it a `Max-Age` on the one response that
//! sets it for a remembered login. Nothing else rewrites that cookie later:
//! the session state never changes after login.

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::configuration::{Period, SecretKey};
use crate::crypto::derive_key;

/// The session cookie's name over plain http (development only).
pub const SESSION_COOKIE: &str = "authd_session";
/// Its name when `Secure`: browsers only accept a `__Host-` cookie that is
/// `Secure`, has `Path=/` and no `Domain`, so no subdomain can plant or
/// shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-authd_session";
pub const CSRF_COOKIE: &str = "csrf_token";

/// How authd's cookies are made and read; registered as app data for the
/// login and logout handlers and the key-rotation middleware.
#[derive(Clone)]
pub struct CookiePolicy {
    secure: bool,
    /// Whether logout also sends `Clear-Site-Data: "cookies"`.
    clear_site_data: bool,
    /// Signs and encrypts the session cookie (AES-256-GCM in actix's private jar).
    key: Key,
    /// The key being rotated out: its cookies are still opened.
    previous_key: Option<Key>,
}

/// Put in a response's extensions to make its session cookie persistent.
#[derive(Clone, Copy, Debug)]
pub struct PersistSessionCookie {
    pub name: &'static str,
    pub lifetime: Period,
}

fn derive(secret: &SecretKey) -> Key {
    Key::from(&derive_key::<64>(
        secret.expose(),
        "authd session cookie v1",
    ))
}

impl CookiePolicy {
    pub fn new(
        secure: bool,
        clear_site_data: bool,
        secret: &SecretKey,
        previous: Option<&SecretKey>,
    ) -> Self {
        Self {
            secure,
            clear_site_data,
            key: derive(secret),
            previous_key: previous.map(derive),
        }
    }

    pub fn session_cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    pub fn session_middleware(&self) -> SessionMiddleware<CookieSessionStore> {
        SessionMiddleware::builder(CookieSessionStore::default(), self.key.clone())
            .cookie_name(self.session_cookie_name().into())
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
    pub fn csrf(&self, token: &str, persist_for: Option<Period>) -> Cookie<'static> {
        let mut cookie = self.base(CSRF_COOKIE, token.to_owned());
        cookie.set_http_only(false);
        if let Some(lifetime) = persist_for {
            cookie.set_max_age(max_age(lifetime));
        }
        cookie
    }

    /// A logout's response: both of our cookies deleted, and, when
    /// `CLEAR_SITE_DATA` asks for it, every other cookie of the site too.
    /// Browsers apply that to the whole registrable domain (every app on
    /// `example.com`, not just `auth.example.com`), so it is opt-in.
    pub fn logged_out(&self) -> HttpResponse {
        let mut response = HttpResponse::NoContent();
        if self.clear_site_data {
            response.insert_header(("Clear-Site-Data", "\"cookies\""));
        }
        for name in [self.session_cookie_name(), CSRF_COOKIE] {
            let mut cookie = self.base(name, String::new());
            cookie.make_removal();
            response.cookie(cookie);
        }
        response.finish()
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

fn max_age(lifetime: Period) -> time::Duration {
    time::Duration::seconds(lifetime.seconds())
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
    if let Some(persist) = persist {
        let headers = response.headers_mut();
        let rewritten: Vec<HeaderValue> = headers
            .get_all(SET_COOKIE)
            .map(|value| with_max_age(value, persist).unwrap_or_else(|| value.clone()))
            .collect();
        headers.remove(SET_COOKIE);
        for value in rewritten {
            headers.append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

fn with_max_age(value: &HeaderValue, persist: PersistSessionCookie) -> Option<HeaderValue> {
    let mut cookie = Cookie::parse(value.to_str().ok()?).ok()?;
    if cookie.name() != persist.name {
        return None;
    }
    cookie.set_max_age(max_age(persist.lifetime));
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// Runs before the session middleware during a key rotation: a session
/// cookie sealed with `SECRET_KEY_PREVIOUS` is re-sealed with the current key
/// in the request, so actix-session (which knows one key) accepts it.
pub async fn accept_previous_key(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(policy) = request.app_data::<web::Data<CookiePolicy>>().cloned()
        && let Some(previous) = &policy.previous_key
    {
        let name = policy.session_cookie_name();
        if let Some(header) = resealed(request.headers(), name, &policy.key, previous) {
            request.headers_mut().insert(COOKIE, header);
        }
    }
    next.call(request).await
}

/// The request's `Cookie` header with the named cookie re-sealed, or `None`
/// when there is nothing to change.
fn resealed(headers: &HeaderMap, name: &str, current: &Key, previous: &Key) -> Option<HeaderValue> {
    let joined = headers
        .get_all(COOKIE)
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let mut changed = false;
    let cookies: Vec<String> = parse_cookie_header(&joined)
        .map(|cookie| {
            if cookie.name() == name
                && open(&cookie, current).is_none()
                && let Some(value) = open(&cookie, previous)
            {
                changed = true;
                return seal(name, value, current);
            }
            cookie.encoded().to_string()
        })
        .collect();
    changed
        .then(|| HeaderValue::from_str(&cookies.join("; ")).ok())
        .flatten()
}

/// As actix-web reads a `Cookie` header.
fn parse_cookie_header(header: &str) -> impl Iterator<Item = Cookie<'_>> {
    header
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .filter_map(|part| Cookie::parse_encoded(part).ok())
}

fn open(cookie: &Cookie<'_>, key: &Key) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(cookie.clone().into_owned());
    jar.private(key)
        .get(cookie.name())
        .map(|opened| opened.value().to_owned())
}

fn seal(name: &str, value: String, key: &Key) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(name.to_owned(), value));
    jar.get(name)
        .map(|sealed| sealed.encoded().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_sealed_with_the_previous_key_is_resealed_with_the_current_one() {
        let (current, previous) = (Key::generate(), Key::generate());
        let old = seal(SESSION_COOKIE, "state".into(), &previous);
        let mut headers = HeaderMap::new();
        let header = format!("csrf_token=abc; {old}");
        headers.insert(COOKIE, HeaderValue::from_str(&header).unwrap());

        let resealed = resealed(&headers, SESSION_COOKIE, &current, &previous).unwrap();
        let resealed = resealed.to_str().unwrap();
        assert!(resealed.starts_with("csrf_token=abc; "), "{resealed}");
        let cookie = parse_cookie_header(resealed)
            .find(|cookie| cookie.name() == SESSION_COOKIE)
            .unwrap();
        assert_eq!(open(&cookie, &current).as_deref(), Some("state"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_cookie_headers_never_panic(header in "\\PC{0,300}") {
            let (current, previous) = (Key::generate(), Key::generate());
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&header) {
                headers.insert(COOKIE, value);
                let _ = resealed(&headers, SESSION_COOKIE, &current, &previous);
            }
        }
    }

    #[test]
    fn current_unknown_and_absent_cookies_are_left_alone() {
        let (current, previous, stranger) = (Key::generate(), Key::generate(), Key::generate());
        for header in [
            seal(SESSION_COOKIE, "state".into(), &current),
            seal(SESSION_COOKIE, "state".into(), &stranger),
            "other=1".to_owned(),
            format!("{SESSION_COOKIE}=garbage"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(&header).unwrap());
            assert!(
                resealed(&headers, SESSION_COOKIE, &current, &previous).is_none(),
                "{header}"
            );
        }
    }
}
