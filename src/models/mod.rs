//! Diesel models, each beside the queries that use it.

pub mod session;
pub mod user;

pub use session::Session;
pub use user::User;
