//! Where a browser says a request comes from, for cookie-authenticated
//! writes: this site, an allowed CORS origin, or somewhere else.

use actix_web::HttpRequest;
use actix_web::http::header::{HOST, ORIGIN, REFERER};

#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// `PUBLIC_URL`'s origin, when the Host header cannot be trusted to name us.
    pub public_origin: Option<String>,
    /// Origins allowed credentialed CORS, and so cookie-authenticated writes.
    pub cors_origins: Vec<String>,
}

impl OriginPolicy {
    /// True unless the request's `Origin` (or, lacking it, `Referer`) names
    /// a site other than this one (`PUBLIC_URL`, or the Host header) or an
    /// allowed CORS origin. Requests that send neither (curl, native apps)
    /// are left to the CSRF token.
    pub fn allows(&self, request: &HttpRequest) -> bool {
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
        if self.cors_origins.contains(&origin) {
            return true;
        }
        if let Some(public) = &self.public_origin {
            return &origin == public;
        }
        // Without PUBLIC_URL, the API's own origin is judged by host and port
        // against the Host header the browser sent, which a cross-site page
        // cannot set (behind a proxy that rewrites Host, set PUBLIC_URL).
        let host = headers.get(HOST).and_then(|host| host.to_str().ok());
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
}
