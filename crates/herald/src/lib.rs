//! Herald, an email and SMS sending engine for CRMs.
//!
//! This facade re-exports Herald's crates under short names and composes them
//! into the operations the binaries (`herald-server`, `herald-worker`) and
//! embedders use. It adds composition only; the logic lives in the crates:
//!
//! - [`message`]: merge fields, tracked links, MIME building, attachment routing, SMS.
//! - [`auth`]: DKIM signing and keys, SPF/DKIM/DMARC domain checks.
//! - [`schedule`]: sending rules, throttle, the durable outbox.
//! - [`eventlog`]: events, totals, campaigns, bounces and complaints, suppression, reports.
//! - [`inbound`]: a raw bounce or complaint message turned into events.
//! - [`tracking`]: the click, open and unsubscribe endpoints (an axum router).
//! - [`config`], [`Herald`], [`worker`], [`transport`]: the service and its delivery loop.
//! - [`domains`]: the domain check as an operator runs it, with its report.
//!
//! ```no_run
//! use herald::auth::{DnsConfig, PlatformAuth};
//! use herald::domains::{self, DomainCheck};
//!
//! # async fn run() -> Result<(), herald::domains::Error> {
//! let report = domains::check(DomainCheck {
//!     domain: "shop.example",
//!     selector: "herald",
//!     key: None,
//!     mail_from: None,
//!     platform: PlatformAuth {
//!         spf_include: "spf.herald.example".into(),
//!         sending_ips: vec!["192.0.2.10".parse().expect("an IP")],
//!         bounce_domain: "bounces.herald.example".into(),
//!         helo: None,
//!     },
//!     dns: DnsConfig { nameserver: Some("127.0.0.1:5353".parse().expect("an address")), ..DnsConfig::default() },
//! })
//! .await?;
//! print!("{}", domains::render(&report));
//! # Ok(()) }
//! ```

pub use herald_auth as auth;
pub use herald_eventlog as eventlog;
pub use herald_message as message;
pub use herald_schedule as schedule;

pub mod accounts;
pub mod api;
pub mod app;
mod cache;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod destinations;
pub mod domains;
pub mod http;
pub mod i18n;
pub mod inbound;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod quickstart;
pub mod secrets;
mod service;
pub mod signals;
pub mod sms;
pub mod tracking;
pub mod transport;
pub mod vault;
pub mod webhooks;
pub mod worker;

pub use service::{Error, Herald, MessageValues, Signers};
