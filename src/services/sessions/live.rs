//! What a valid credential stands for.

use crate::db::sessions::Session;
use crate::db::users::User;

/// A live session and its user, as validated: what a request that
/// presents the session's credential is authenticated as. Shared, not
/// copied, by the requests that present it.
#[derive(Clone, Debug)]
pub struct LiveSession {
    pub session: Session,
    pub user: User,
}
