//! authd: user accounts and login sessions as a JSON API.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod client;
pub mod configuration;
pub mod db;
pub mod domain;
pub mod error;
pub mod models;
pub mod passwords;
pub mod routes;
pub mod schema;
pub mod security_headers;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod throttle;
