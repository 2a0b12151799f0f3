//! Liveness and readiness probes for load balancers and orchestrators.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;
use tokio::sync::Notify;

use crate::db::{self, PgPool};
use crate::http::error::ApiError;

/// Set when shutdown begins: from then on the instance is not ready, so a
/// load balancer stops sending it requests. It keeps serving while the
/// requests that were in flight when shutdown began finish (so `/readyz`'s
/// 503 can be seen), then the listener closes.
#[derive(Debug, Default)]
pub struct Draining {
    began: AtomicBool,
    /// Requests in flight that began before shutdown did.
    earlier: AtomicUsize,
    done: Notify,
}

impl Draining {
    pub fn begin(&self) {
        self.began.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.began.load(Ordering::Acquire)
    }

    /// Counts a request in flight until the guard drops, unless shutdown
    /// has begun (those are waited for by the server's graceful stop).
    pub fn track(self: &Arc<Self>) -> Option<InFlight> {
        if self.is_draining() {
            return None;
        }
        self.earlier.fetch_add(1, Ordering::SeqCst);
        Some(InFlight(self.clone()))
    }

    /// Waits until the requests that began before shutdown have finished:
    /// false when `within` ran out first.
    pub async fn earlier_requests_done(&self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                // Registered before the check, so a wake-up in between is
                // not lost.
                let done = self.done.notified();
                if self.earlier.load(Ordering::SeqCst) == 0 {
                    return;
                }
                done.await;
            }
        })
        .await
        .is_ok()
    }
}

/// A request counted by [`Draining::track`].
pub struct InFlight(Arc<Draining>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.earlier.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.is_draining() {
            self.0.done.notify_waiters();
        }
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
