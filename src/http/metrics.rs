//! `GET /metrics` in Prometheus' text format, on a listener of its own
//! (`METRICS_BIND`), so that it is never public by accident.

use actix_web::{App, HttpResponse, web};

use crate::db::PgPool;

pub async fn metrics(pool: web::Data<PgPool>) -> HttpResponse {
    // The pool's size is read when asked: it changes without an event.
    let state = pool.state();
    metrics::gauge!("authd_db_pool_connections").set(f64::from(state.connections));
    metrics::gauge!("authd_db_pool_idle_connections").set(f64::from(state.idle_connections));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics().render())
}

/// The metrics listener's app: `/metrics` only.
pub fn app(
    pool: web::Data<PgPool>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(pool)
        .service(web::resource("/metrics").route(web::get().to(metrics)))
}
