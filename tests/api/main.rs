//! Integration tests over real HTTP against a real Postgres.

mod contract;
mod helpers;

mod bad_input;
mod database;
mod login;
mod logout;
mod me;
mod next;
mod register;
mod service;
mod sessions;
