//! Message building for Herald.
//!
//! `herald-message` turns a CRM user's template and a person's data into a
//! signed-ready RFC 5322 message, without touching a database, the network, the
//! file system or the clock: everything it needs is passed in.
//!
//! The pipeline, once per send and once per recipient:
//!
//! 1. [`Template::compile`] parses the merge fields of the subject, HTML and text
//!    parts (errors name the field and its position), rewrites every tracked link of
//!    the HTML part to a token placeholder and adds the open pixel. The resulting
//!    [`CompiledTemplate`] is stored once per send.
//! 2. [`CompiledTemplate::resolve`] takes one recipient's [`MergeData`] and keeps
//!    the values the template uses: a [`MergeValues`], small and serialisable, that
//!    can be stored and rendered later without the person's data (R-MSG-2).
//! 3. [`CompiledTemplate::build`] renders the parts with those values, mints the
//!    signed tracking tokens for this message, and writes the MIME message with its
//!    envelope ([`OutgoingEmail`]).
//!
//! Other pieces: [`Tracker`] mints and checks tracking tokens (R-MSG-5),
//! [`AttachmentPolicy`] routes large mail to a fallback transport (R-MSG-7), and
//! [`sms`] merges SMS texts and counts their segments (R-MSG-8).
//!
//! ```
//! use herald_message::*;
//! use chrono::TimeZone;
//!
//! let template = Template {
//!     subject: "Hello {{person.first_name | \"there\"}}".into(),
//!     html: r#"<p>Hi {{person.first_name}}, see <a href="https://example.com/offer">our offer</a>.</p>"#.into(),
//!     text: "Hi {{person.first_name}}, see https://example.com/offer".into(),
//! };
//! let compiled = template.compile(&FieldSchema::standard(), &TrackingOptions::default())?;
//!
//! let mut person = MergeData::default();
//! person.person.insert("first_name".into(), "Ada <3".into());
//! let values = compiled.resolve(&person)?;
//!
//! let tracker = Tracker::new(b"a secret of at least 32 bytes....", "https://t.example.com")?;
//! let platform = Platform::new("Herald", "mailer@platform.example", "platform.example", "bounces.platform.example", "herald")?;
//! let sender = SenderIdentity { user: Mailbox::new(Some("Bob"), "bob@customer.example")?, domain_verified: false };
//! let email = compiled.build(&values, &BuildParams {
//!     platform: &platform,
//!     sender: &sender,
//!     to: &Mailbox::new(Some("Ada"), "ada@example.org")?,
//!     reply_to: None,
//!     kind: SendKind::Individual,
//!     message: MessageRef { account: 1, message: 42 },
//!     campaign: None,
//!     date: chrono::Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap(),
//!     attachments: &[],
//! }, &tracker)?;
//! let text = String::from_utf8(email.message.clone()).unwrap();
//! assert!(text.contains("Sender: "));            // domain not verified yet
//! assert!(text.contains("Ada &lt;3"));           // merged values are HTML-escaped
//! assert!(email.envelope.mail_from.ends_with("@bounces.platform.example"));
//! # Ok::<(), herald_message::Error>(())
//! ```

mod address;
mod build;
mod error;
mod identity;
mod ids;
mod links;
mod merge;
mod policy;
pub mod sms;
mod tracking;
mod url_place;

pub use address::{EmailAddress, Mailbox};
pub use build::{Attachment, BuildParams, Envelope, OutgoingEmail, SendKind};
pub use error::{Error, Part, Result};
pub use identity::{Platform, SenderIdentity};
pub use ids::CampaignId;
pub use links::{TrackedLink, TrackingOptions};
pub use merge::{CompiledTemplate, FieldSchema, MergeData, MergeValues, Preview, Template};
pub use policy::{AttachmentPolicy, Route};
pub use tracking::{MessageRef, Token, TokenError, TokenKind, Tracker};

/// Rejects CR, LF and every other control character (TAB excepted) in a header
/// value, naming the header and the byte position of the first offender.
pub fn check_header_value(header: &str, value: &str) -> Result<()> {
    match value
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\t')
    {
        Some((position, _)) => Err(Error::HeaderInjection {
            header: header.to_owned(),
            position,
        }),
        None => Ok(()),
    }
}
