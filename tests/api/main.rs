//! Integration tests over real HTTP against a real Postgres.

// The harness fails a test by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod account;
mod architecture;
mod audit;
mod bad_input;
mod cli;
mod configuration;
mod cookies;
mod cors;
mod csrf;
mod database;
mod durability;
mod http;
mod login;
mod logout;
mod logs;
mod me;
mod metrics;
mod next;
mod passwords;
mod races;
mod recovery;
mod register;
mod secrets;
mod service;
mod session_cache;
mod session_lifetimes;
mod sessions_api;
mod shutdown;
mod spec;
mod throttle;
mod tokens;
