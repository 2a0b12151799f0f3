//! `GET /api/auth/check`: forward auth. A reverse proxy (nginx
//! `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`, Envoy's
//! external auth) asks it about each request to an upstream it protects,
//! and passes the identity it answers with on to the upstream.

use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::http::auth::authenticate::{Auth, Via};
use crate::http::auth::origin::OriginPolicy;
use crate::http::error::ApiError;

/// Where proxies put the original request's method: nginx's convention,
/// then Traefik's and Caddy's.
const METHOD_HEADERS: [&str; 2] = ["x-original-method", "x-forwarded-method"];

/// What the address is percent-encoded with: everything that is not
/// printable ASCII, and `%` itself, so that decoding is always right.
const ENCODED: &AsciiSet = &CONTROLS.add(b'%').add(b' ');

/// `204` with the caller's identity in `X-Authd-*` headers, `401` without a
/// live session, `403` for a cookie-carried unsafe request without its CSRF
/// token or from a foreign origin.
pub async fn auth_check(
    request: HttpRequest,
    auth: web::Data<Auth>,
    origins: web::Data<OriginPolicy>,
) -> Result<HttpResponse, ApiError> {
    let unsafe_method = original_method_is_unsafe(&request);
    let me = auth
        .authenticate_as(&request, unsafe_method)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    // A bearer token is no ambient credential: only a cookie can be made to
    // travel by a foreign page.
    if unsafe_method && me.via == Via::Cookie && !origins.allows(&request) {
        return Err(ApiError::ForeignOrigin);
    }
    let span = tracing::Span::current();
    span.record("user_id", me.user.id.get());
    span.record("session", me.session.id.as_str());
    let mut response = HttpResponse::NoContent();
    for (name, value) in [
        ("x-authd-user-id", me.user.id.to_string()),
        ("x-authd-username", me.user.username.clone()),
        ("x-authd-session", me.session.id.to_string()),
        (
            "x-authd-email-verified",
            me.user.email_verified_at.is_some().to_string(),
        ),
        (
            "x-authd-email",
            utf8_percent_encode(&me.user.email, ENCODED).to_string(),
        ),
    ] {
        let value = HeaderValue::try_from(value)
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("{name}: {error}")))?;
        response.insert_header((HeaderName::from_static(name), value));
    }
    Ok(response.finish())
}

/// Whether the request the proxy asks about changes state. Without a
/// method header it is a read. A client may send these headers itself, and
/// a proxy may set one and pass the other through untouched: if any names
/// a method that is not safe (or one that cannot be read), it is unsafe.
fn original_method_is_unsafe(request: &HttpRequest) -> bool {
    METHOD_HEADERS
        .iter()
        .flat_map(|name| request.headers().get_all(*name))
        .any(|value| {
            value
                .to_str()
                .ok()
                .and_then(|method| Method::from_bytes(method.trim().as_bytes()).ok())
                .is_none_or(|method| !method.is_safe())
        })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn any_unsafe_method_header_makes_the_request_unsafe() {
        let unsafe_with = |headers: &[(&str, &str)]| {
            let request = headers
                .iter()
                .fold(TestRequest::get(), |request, header| {
                    request.insert_header(*header)
                })
                .to_http_request();
            original_method_is_unsafe(&request)
        };
        assert!(!unsafe_with(&[]));
        assert!(!unsafe_with(&[("x-original-method", "GET")]));
        assert!(
            unsafe_with(&[("x-forwarded-method", "head")]),
            "methods are case-sensitive: this is not HEAD"
        );
        assert!(unsafe_with(&[("x-original-method", "POST")]));
        assert!(unsafe_with(&[("x-forwarded-method", "DELETE")]));
        assert!(unsafe_with(&[
            ("x-forwarded-method", "GET"),
            ("x-original-method", "PATCH")
        ]));
        assert!(unsafe_with(&[("x-original-method", "BR EW")]));
    }

    #[test]
    fn an_address_is_encoded_only_where_it_must_be() {
        let encoded = |email| utf8_percent_encode(email, ENCODED).to_string();
        assert_eq!(encoded("susan@example.com"), "susan@example.com");
        assert_eq!(encoded("josé@example.com"), "jos%C3%A9@example.com");
        assert_eq!(encoded("a%b@example.com"), "a%25b@example.com");
    }
}
