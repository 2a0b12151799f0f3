//! `GET /metrics` in Prometheus' text format, on a listener of its own
//! (`METRICS_BIND`), so that it is never public by accident.

use actix_web::{App, HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::db::{self, PgPool, mail_outbox};

pub async fn metrics(
    pool: web::Data<PgPool>,
    recorder: web::Data<PrometheusHandle>,
) -> HttpResponse {
    // Levels are read when asked: they change without an event here (the
    // outbox is shared by every instance, and survives restarts).
    let state = pool.state();
    metrics::gauge!("authd_db_pool_max_connections").set(f64::from(pool.max_size()));
    metrics::gauge!("authd_db_pool_connections").set(f64::from(state.connections));
    metrics::gauge!("authd_db_pool_idle_connections").set(f64::from(state.idle_connections));
    match db::run(&pool, mail_outbox::depth).await {
        Ok(depth) => metrics::gauge!("authd_mail_outbox_depth").set(depth as f64),
        Err(error) => tracing::debug!(%error, "outbox depth unknown while the database is down"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(recorder.render())
}

/// The metrics listener's app: `/metrics` only, rendered from `recorder`
/// (the one [`telemetry::metrics`](crate::telemetry::metrics) installed).
pub fn app(
    pool: web::Data<PgPool>,
    recorder: web::Data<PrometheusHandle>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().app_data(pool).app_data(recorder).service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .route(web::head().to(metrics)),
    )
}
