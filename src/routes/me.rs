use actix_web::HttpResponse;

use crate::auth::CurrentUser;

pub async fn me(current: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(&current.0.user)
}
