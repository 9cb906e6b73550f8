//! herald-eventlog against SQLite and PostgreSQL, and inbound reports of many shapes.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod client;
mod corpus;
#[allow(dead_code)] // shared with herald-schedule's tests; not every helper is used here
#[path = "../../../schedule/tests/it/db.rs"]
mod db;
mod inbound;
mod report;
mod schema;
mod store;
