//! The microblog's index, protected by authd: everything `authd serve`
//! serves (the same settings from the environment, the same routes,
//! `/readyz`), plus `GET /api/index`, which only a logged-in user reaches.
//!
//! ```sh
//! cargo run --release --example microblog
//! ```

use actix_web::{HttpResponse, web};
use authd::{Application, Authenticated, Settings, login_required};
use serde_json::json;

/// The microblog's first view: a greeting and some posts. Only a logged-in
/// caller gets here; anyone else gets authd's `401`, with a `login_url` that
/// brings them back (`/api/login?next=%2Fapi%2Findex`).
async fn index(me: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "greeting": format!("Hello, {}!", me.user.username),
        "posts": [
            {"author": {"username": "john"}, "body": "Beautiful day in Portland!"},
            {"author": {"username": "susan"}, "body": "The Avengers movie was so cool!"},
        ],
    }))
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _logging = authd::init_logging(settings.log_format);
    let application = Application::builder(settings)
        .routes(|routes| {
            routes.service(web::resource("/api/index").route(login_required(web::get().to(index))));
        })
        .build()
        .await?;
    application.stop_on_signals()?;
    application.run_until_stopped().await?;
    Ok(())
}
