//! Who a message is from: the CRM user, and the platform sending on their behalf.

use crate::address::valid_domain;
use crate::{Error, Mailbox, Result};
use serde::{Deserialize, Serialize};

/// The platform's own identity (R-MSG-1): the `Sender:` mailbox used while a
/// customer's domain is unverified, the domain of Message-IDs, the bounce domain
/// of envelope senders and the sender id of `Feedback-ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `Sender:` mailbox, e.g. `Herald <mailer@platform.example>`.
    pub sender: Mailbox,
    /// Right-hand side of every Message-ID.
    pub message_id_domain: String,
    /// Domain of the VERP envelope sender, where bounces come back.
    pub bounce_domain: String,
    /// The last field of `Feedback-ID` (letters, digits, `-`, `_`, `.`).
    pub feedback_sender: String,
}

impl Platform {
    /// Builds and checks a platform identity.
    pub fn new(
        name: &str,
        sender_address: &str,
        message_id_domain: &str,
        bounce_domain: &str,
        feedback_sender: &str,
    ) -> Result<Self> {
        let sender = Mailbox::for_field("platform.sender", Some(name), sender_address)?;
        for (field, domain) in [
            ("platform.message_id_domain", message_id_domain),
            ("platform.bounce_domain", bounce_domain),
        ] {
            if !valid_domain(domain) {
                return Err(Error::Invalid {
                    field,
                    rule: format!("`{domain}` is not a valid ASCII domain name"),
                });
            }
        }
        if feedback_sender.is_empty()
            || !feedback_sender
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Invalid {
                field: "platform.feedback_sender",
                rule: "must be 1 or more letters, digits, `-`, `_` or `.`".into(),
            });
        }
        Ok(Platform {
            sender,
            message_id_domain: message_id_domain.to_owned(),
            bounce_domain: bounce_domain.to_owned(),
            feedback_sender: feedback_sender.to_owned(),
        })
    }
}

/// The CRM user a message is from, and whether their domain passed the SPF and
/// DKIM checks (then no `Sender:` is added and the mail is signed with their key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderIdentity {
    /// `From:` — the user's name and address.
    pub user: Mailbox,
    /// Whether the user's domain is verified (R-MSG-1, R-AUTH-*).
    pub domain_verified: bool,
}
