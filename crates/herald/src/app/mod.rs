//! Herald's use cases: the operations the API, the dashboard, the quick start
//! and an embedder call, with typed inputs and typed results (counts and
//! enums, never display text). The HTTP handlers in [`crate::api`] only
//! extract a request, call one of these and map the result to HTTP; the rules
//! themselves (who may send, who is skipped and why, how a campaign is named,
//! how a person is validated and stored) live here and nowhere else.
//!
//! - [`sends`]: email sends — recipients resolved, deduplicated and skipped
//!   with a [`Skip`] reason, the campaign and the send written in one transaction.
//! - [`sms`]: SMS sends through the outbox, the gateway's delivery reports, opt-outs.
//! - [`contacts`]: persons and organisations, validated once for every path.
//! - [`domains`]: sending domains, their DKIM keys and checks.
//! - [`accounts`]: accounts, the "enabled" rule, plans, API keys.
//! - [`dashboard`]: sign-in links, sessions, and the data of each dashboard page.
//! - [`unsubscribe`]: where a recipient's unsubscribe link leads, and their choice.

use crate::service::Herald;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod accounts;
pub mod contacts;
pub mod dashboard;
pub mod domains;
pub mod sends;
pub mod sites;
pub mod sms;
pub mod unsubscribe;
pub mod webhooks;

/// A use case's error: what the caller did wrong (naming the field and the
/// rule), what is not there or not allowed, or a failure below.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: the field and the rule it breaks.
    #[error("{field}: {rule}")]
    Invalid {
        /// The input field at fault (`recipients[3].email`).
        field: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The account has not accepted the sending rules, so it may not send.
    #[error("the account is not enabled: accept the sending rules first (POST /v1/account/rules)")]
    NotEnabled,
    /// The thing asked for does not exist, or is another account's.
    #[error("{what} not found")]
    NotFound {
        /// What (`person`, `domain`, …).
        what: &'static str,
    },
    /// The account's plan does not include this (the dashboard).
    #[error("the account's plan `{plan}` does not include the dashboard (plans that do: {})", plans.join(", "))]
    NotInPlan {
        /// The account's plan.
        plan: String,
        /// The plans that include it.
        plans: Vec<String>,
    },
    /// A part the operation needs is not configured or not reachable.
    #[error("{0}")]
    Unavailable(String),
    /// The caller did not prove who it is (a gateway's report without the
    /// right token).
    #[error("{0}")]
    Unauthorized(String),
    /// A failure in a crate below (storage, sending rules, MIME, DKIM).
    #[error(transparent)]
    Herald(#[from] crate::Error),
}

impl Error {
    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, rule: impl std::fmt::Display) -> Self {
        Error::Invalid {
            field: field.into(),
            rule: rule.to_string(),
        }
    }
}

macro_rules! from_crate_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Herald(e.into())
            }
        }
    )*};
}
from_crate_error!(
    herald_schedule::Error,
    herald_eventlog::Error,
    herald_message::Error,
    herald_auth::Error
);

/// A use case's result.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a recipient was left out of a send. The wire name ([`Skip::as_str`]) is
/// the key of the API's `skipped` counts; a UI translates the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// No stored person has the id.
    UnknownPerson,
    /// The stored person has no email address.
    NoEmailAddress,
    /// The stored person's address is not a valid address.
    InvalidEmailAddress,
    /// The stored person's data cannot be merged into the message (a line break in a name).
    UnusablePersonData,
    /// The stored person has no usable mobile or phone number (SMS).
    NoMobileNumber,
    /// The person is flagged "no SMS", or their number opted out of SMS.
    SmsOptOut,
    /// Flagged "block mass emails" (mass mail only).
    BlocksMassEmail,
    /// On the account's blocklist (hard bounce, R-EVT-5).
    Blocklisted,
    /// Unsubscribed or complained (mass mail only).
    Unsubscribed,
}

impl Skip {
    /// The reason's stable name, as the API's `skipped` counts key it.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnknownPerson => "unknown person",
            Skip::NoEmailAddress => "no email address",
            Skip::InvalidEmailAddress => "invalid email address",
            Skip::UnusablePersonData => "unusable person data",
            Skip::NoMobileNumber => "no mobile number",
            Skip::SmsOptOut => "sms opt-out",
            Skip::BlocksMassEmail => herald_schedule::SkipReason::BlocksMassEmail.as_str(),
            Skip::Blocklisted => herald_schedule::SkipReason::Blocklisted.as_str(),
            Skip::Unsubscribed => herald_schedule::SkipReason::Unsubscribed.as_str(),
        }
    }
}

impl From<herald_schedule::SkipReason> for Skip {
    fn from(r: herald_schedule::SkipReason) -> Self {
        match r {
            herald_schedule::SkipReason::Blocklisted => Skip::Blocklisted,
            herald_schedule::SkipReason::Unsubscribed => Skip::Unsubscribed,
            herald_schedule::SkipReason::BlocksMassEmail => Skip::BlocksMassEmail,
        }
    }
}

/// Recipients left out of a send, counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped(pub BTreeMap<Skip, usize>);

impl Skipped {
    /// Counts one more recipient skipped for `reason`.
    pub fn add(&mut self, reason: Skip) {
        *self.0.entry(reason).or_default() += 1;
    }

    /// All skipped recipients.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// The counts keyed by each reason's wire name.
    pub fn by_name(&self) -> BTreeMap<String, usize> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), *v))
            .collect()
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{v} {}", k.as_str()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The rule "an account sends only once the sending rules are accepted"
/// (R-ACC-1): the account, or [`Error::NotEnabled`].
pub async fn enabled_account(h: &Herald, account: u64) -> Result<crate::accounts::Account> {
    let a = h.accounts.get(account).await?;
    if !a.enabled {
        return Err(Error::NotEnabled);
    }
    Ok(a)
}
