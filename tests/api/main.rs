//! Integration tests over real HTTP against a real Postgres.

// The harness fails a test by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account;
mod architecture;
mod contract;
mod helpers;
mod mail_sink;

mod bad_input;
mod cache;
mod cli;
mod configuration;
mod database;
mod devices;
mod durability;
mod hardening;
mod login;
mod logout;
mod logs;
mod me;
mod next;
mod operations;
mod recovery;
mod register;
mod service;
mod sessions;
mod spec;
mod throttle;
mod tokens;
