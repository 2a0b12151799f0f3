//! `GET /api/sessions` and `DELETE /api/sessions/{id}`: where the user is
//! logged in, and ending one of those logins (a lost phone).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::sessions::{Session, SessionRecord};
use crate::domain::{Client, SessionId};
use crate::http::auth::authenticate::{Auth, Authenticated};
use crate::http::auth::cookies::CookiePolicy;
use crate::http::error::ApiError;

/// A session as its owner sees it: never its credential.
#[derive(Serialize)]
pub struct SessionView<'a> {
    id: &'a SessionId,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    remember: bool,
    user_agent: Option<&'a str>,
    ip: Option<String>,
    current: bool,
    /// How it was made (`pwd`, `otp`, `recovery`).
    amr: Vec<&'a str>,
}

impl<'a> SessionView<'a> {
    fn of(record: &'a SessionRecord, current: &Session) -> Self {
        let session = &record.session;
        Self {
            id: &session.id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
            expires_at: session.expires_at,
            remember: session.remember,
            user_agent: record.user_agent.as_deref(),
            ip: record.ip.map(|ip| ip.addr().to_string()),
            current: session.token == current.token,
            amr: session.methods(),
        }
    }
}

/// The user's live sessions, newest first.
pub async fn list_sessions(
    me: Authenticated,
    auth: web::Data<Auth>,
) -> Result<HttpResponse, ApiError> {
    let sessions = auth.sessions.list(me.user.id).await?;
    let views: Vec<SessionView<'_>> = sessions
        .iter()
        .map(|session| SessionView::of(session, &me.session))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Ends one of the user's sessions. Another user's, or an unknown id, is
/// 404 alike; ending the current one is a logout, cookies and all.
pub async fn end_session(
    me: Authenticated,
    id: web::Path<String>,
    auth: web::Data<Auth>,
    cookies: web::Data<CookiePolicy>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    // Anything but a public id's shape names no session.
    let id = SessionId::parse(&id).ok_or(ApiError::NoSuchSession)?;
    let ended = auth
        .sessions
        .end(me.user.id, id, &client)
        .await?
        .ok_or(ApiError::NoSuchSession)?;
    if ended.token == me.session.token {
        return Ok(cookies.logged_out());
    }
    Ok(HttpResponse::NoContent().finish())
}
