//! Integration tests over real HTTP against a real Postgres.

// The harness fails a test by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod account;
mod architecture;
mod audit;
mod auth_check;
mod bad_input;
mod browser;
mod cli;
mod configuration;
mod cookies;
mod cors;
mod csrf;
mod database;
mod durability;
mod forward_auth;
mod http;
mod login;
mod logout;
mod logs;
mod me;
mod metrics;
mod mfa;
mod microblog;
mod next;
mod notices;
mod passkeys;
mod passwords;
mod query_plans;
mod races;
mod readme;
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
