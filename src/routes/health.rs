use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database answers too.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, |conn| {
        diesel::sql_query("SELECT 1").execute(conn)
    })
    .await
    .map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
