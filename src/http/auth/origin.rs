//! Where a browser says a request comes from. A page on another site can
//! make a browser send a form post or a `text/plain` fetch without asking
//! anyone, cookies or not (a forged logout, a login into the attacker's
//! account); such a request names its site in `Origin` (or `Referer`), and
//! is refused before anything else runs.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HOST, HeaderMap, ORIGIN, REFERER};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};

use crate::http::error::ApiError;

/// Which origins may send unsafe requests; registered as app data for
/// [`refuse_foreign_origins`].
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// `PUBLIC_URL`'s origin: the API's own, when the Host header does not
    /// say it (a proxy that rewrites Host, or terminates TLS).
    pub public_origin: Option<String>,
    /// Origins allowed credentialed CORS, and so unsafe requests.
    pub cors_origins: Vec<String>,
}

impl OriginPolicy {
    /// True unless the request's `Origin` (or, lacking it, `Referer`) names
    /// an origin other than the API's own or an allowed CORS origin.
    /// Origins are compared whole: scheme, host and port. Requests that
    /// send neither header (curl, native apps) are not a browser's.
    pub fn allows(&self, request: &HttpRequest) -> bool {
        let headers = request.headers();
        let Some(source) = source_origin(headers) else {
            return true;
        };
        // An unreadable source, or the opaque origin `null`, is foreign.
        let Some(source) = source else {
            return false;
        };
        if self.cors_origins.contains(&source) {
            return true;
        }
        match &self.public_origin {
            Some(public) => &source == public,
            None => own_origin(headers).is_some_and(|own| own == source),
        }
    }
}

/// `None` when the request names no source; `Some(None)` when it names one
/// that is not a tuple origin.
fn source_origin(headers: &HeaderMap) -> Option<Option<String>> {
    let raw = match (headers.get(ORIGIN), headers.get(REFERER)) {
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return None,
    };
    Some(
        raw.to_str()
            .ok()
            .and_then(|value| url::Url::parse(value).ok())
            .map(|url| url.origin())
            .filter(url::Origin::is_tuple)
            .map(|origin| origin.ascii_serialization()),
    )
}

/// Without `PUBLIC_URL`, authd is reached as it serves: plain http, at the
/// host and port the browser put in `Host` (which a foreign page cannot
/// set). Behind a TLS-terminating proxy, `PUBLIC_URL` says otherwise.
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(['/', '\\', '@', '?', '#']) {
        return None;
    }
    let url = url::Url::parse(&format!("http://{host}")).ok()?;
    Some(url.origin().ascii_serialization())
}

/// Refuses an unsafe request from a foreign origin with 403, before any
/// other middleware or handler sees it.
pub async fn refuse_foreign_origins(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !request.method().is_safe() {
        let allowed = request
            .app_data::<web::Data<OriginPolicy>>()
            .is_some_and(|policy| policy.allows(request.request()));
        if !allowed {
            return Ok(request
                .error_response(ApiError::ForeignOrigin)
                .map_into_right_body());
        }
    }
    Ok(next.call(request).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy {
            public_origin: None,
            cors_origins: vec!["https://app.example.com".into()],
        }
    }

    fn allows(policy: &OriginPolicy, headers: &[(&str, &str)]) -> bool {
        let request = headers
            .iter()
            .fold(TestRequest::post(), |request, header| {
                request.insert_header(*header)
            })
            .to_http_request();
        policy.allows(&request)
    }

    #[test]
    fn whole_origins_are_compared() {
        let policy = policy();
        let host = ("host", "127.0.0.1:8080");
        assert!(allows(&policy, &[host]), "no source: not a browser");
        assert!(allows(
            &policy,
            &[host, ("origin", "http://127.0.0.1:8080")]
        ));
        assert!(allows(
            &policy,
            &[("host", "auth.test"), ("origin", "http://auth.test:80")]
        ));
        assert!(allows(
            &policy,
            &[host, ("origin", "https://app.example.com")]
        ));
        for foreign in [
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "http://127.0.0.2:8080",
            "https://app.example.com:444",
            "http://app.example.com",
            "null",
            "garbage",
        ] {
            assert!(!allows(&policy, &[host, ("origin", foreign)]), "{foreign}");
        }
        assert!(!allows(
            &policy,
            &[host, ("referer", "https://127.0.0.1:8080/page")]
        ));
        assert!(allows(
            &policy,
            &[host, ("referer", "http://127.0.0.1:8080/page?x")]
        ));
    }

    #[test]
    fn public_url_names_the_own_origin_with_its_scheme() {
        let policy = OriginPolicy {
            public_origin: Some("https://auth.example.com".into()),
            cors_origins: Vec::new(),
        };
        let host = ("host", "auth.example.com");
        assert!(allows(
            &policy,
            &[host, ("origin", "https://auth.example.com")]
        ));
        assert!(!allows(
            &policy,
            &[host, ("origin", "http://auth.example.com")]
        ));
    }
}
