//! The outbox against real databases: every test runs on SQLite (a fresh file)
//! and on PostgreSQL (a fresh database on the server at $HERALD_TEST_POSTGRES,
//! default postgres://postgres@127.0.0.1:5432/test).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod accounts;
mod db;
mod outbox;
mod sessions;
mod sql;
mod throttle;
