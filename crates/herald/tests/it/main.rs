//! The delivery loop against a real SMTP server (Postfix's smtp-sink), on
//! SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[macro_use]
mod api;
mod browser;
mod dashboard;
#[allow(dead_code)] // shared with herald-schedule's tests; not every helper is used here
#[path = "../../../schedule/tests/it/db.rs"]
mod db;
mod delivery;
#[allow(dead_code)] // shared with herald-auth's tests; not every helper is used here
#[path = "../../../auth/tests/it/support.rs"]
mod dns;
#[allow(dead_code)] // shared with herald-server's tests
mod inbound_mail;
mod mx;
mod sink;
mod sites;
mod sms;
mod throttle;
mod tracking;
mod webhooks;
