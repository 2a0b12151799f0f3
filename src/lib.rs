//! authd: user accounts and login sessions as a JSON API.
//!
//! Layers, each importing only those below it:
//! - [`http`]: routes, middleware, extractors, problem+json errors;
//! - [`services`]: accounts, sessions, the throttle, the audit trail;
//! - [`db`] (storage, one module per table, over [`schema`]) and [`domain`]
//!   (values parsed once at the edge);
//! - [`configuration`], [`crypto`] and [`clock`]: settings and small shared
//!   helpers.
//!
//! [`startup`] wires them together; [`cli`] is the command line (whose
//! default command serves); [`telemetry`] sets up logging.

pub mod cli;
pub mod clock;
pub mod configuration;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod http;
/// Diesel's tables, generated from the migrations by `diesel print-schema`
/// (CI checks it): never edited by hand.
pub mod schema;
pub mod services;
pub mod startup;
pub mod telemetry;
