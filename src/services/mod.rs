//! The services: what authd does, free of HTTP. Each takes the storage and
//! helpers it needs when it is built, and is called by the handlers (and,
//! later, the command line).

pub mod accounts;
pub mod audit;
pub mod hash_pool;
pub mod passwords;
pub mod recovery;
pub mod retention;
pub mod session_cache;
pub mod sessions;
pub mod throttle;
