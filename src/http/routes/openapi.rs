//! `GET /api/openapi.yaml`: the contract, served from the binary.

use actix_web::HttpResponse;

/// The contract, byte for byte as in the repository.
pub const SPEC: &str = include_str!("../../../openapi.yaml");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(SPEC)
}
