//! How a session travels over HTTP (an encrypted cookie or a bearer token)
//! and how a request is matched to one. [`authenticate::Auth`] is the one
//! check every route goes through, whether behind
//! [`middleware::login_required`] or, for login and logout, called directly.

pub mod authenticate;
pub mod cookies;
pub mod middleware;
pub mod origin;
pub mod token;
