//! Liveness and readiness probes for load balancers and orchestrators.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::{self, PgPool};
use crate::http::error::ApiError;

/// Set when shutdown begins: from then on the instance is not ready, so a
/// load balancer stops sending it requests while it finishes its own.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: not shutting down, and the database answers too.
pub async fn readyz(
    pool: web::Data<PgPool>,
    draining: web::Data<Draining>,
) -> Result<HttpResponse, ApiError> {
    if draining.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    db::ping(&pool).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
