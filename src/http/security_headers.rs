//! Headers every response carries, errors included: this API serves JSON
//! only, so nothing it sends should be sniffed, framed, scripted or leak a
//! referrer; and under `/api` (authd's routes, and an embedding
//! application's there), nothing it sends should be cached.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderMap, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use actix_web::middleware::Next;

pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; frame-ancestors 'none'";

fn add(headers: &mut HeaderMap, api: bool) {
    if api && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
}

pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let api = request.path() == "/api" || request.path().starts_with("/api/");
    match next.call(request).await {
        Ok(mut response) => {
            add(response.headers_mut(), api);
            Ok(response)
        }
        // An error that escaped every inner layer becomes a response later;
        // it gets the headers then.
        Err(mut error) => {
            error.add_response_mapper(move |mut response| {
                add(response.headers_mut(), api);
                response
            });
            Err(error)
        }
    }
}
