//! `login_required`, by placement: wrap a scope with it and every route in
//! the scope needs a live session, with no check of its own.

use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn login_required(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Preflights carry no credentials; and a path no route matches should
    // get its 404, not a 401 that hints it exists.
    if request.method() == Method::OPTIONS || request.match_pattern().is_none() {
        return next.call(request).await;
    }
    let state = request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState is not registered")))?;
    match authenticate(request.request(), &state).await? {
        Some(authenticated) => {
            request.extensions_mut().insert(Rc::new(authenticated));
            next.call(request).await
        }
        None => Err(ApiError::Unauthenticated.into()),
    }
}
