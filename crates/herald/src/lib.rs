//! Herald, an email and SMS sending engine for CRMs.
//!
//! This facade re-exports Herald's crates under short names and composes them
//! into the operations the binaries (`herald-server`, `herald-worker`) and
//! embedders use. It adds composition only; the logic lives in the crates:
//!
//! - [`message`]: merge fields, tracked links, MIME building, attachment routing, SMS.
//! - [`auth`]: DKIM signing and keys, SPF/DKIM/DMARC domain checks.
//! - [`domains`]: the domain check as an operator runs it, with its report.

pub use herald_auth as auth;
pub use herald_message as message;

pub mod domains;
