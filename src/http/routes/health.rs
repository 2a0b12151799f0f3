//! Liveness and readiness probes for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, PgPool};
use crate::http::error::ApiError;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database answers too.
pub async fn readyz(pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    db::ping(&pool).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
