//! Integration tests over real HTTP against a real Postgres.

mod contract;
mod helpers;

mod bad_input;
mod configuration;
mod database;
mod login;
mod logout;
mod me;
mod next;
mod register;
mod service;
mod sessions;
mod spec;
