//! Writing the MIME message and its envelope (R-MSG-1, R-MSG-3, R-MSG-6).

use crate::merge::Urls;
use crate::{
    CompiledTemplate, Error, Mailbox, MergeValues, MessageRef, Part, Platform, Result,
    SenderIdentity, Tracker, check_header_value,
};
use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::raw::Raw;
use serde::{Deserialize, Serialize};

/// Individual email, or mass email (a newsletter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SendKind {
    /// One email to one person.
    #[serde(rename = "individual", alias = "Individual")]
    Individual,
    /// A newsletter: carries `List-Unsubscribe` and `List-Unsubscribe-Post`.
    #[serde(rename = "mass", alias = "Mass")]
    Mass,
}

impl SendKind {
    fn feedback_type(self) -> &'static str {
        match self {
            SendKind::Individual => "individual",
            SendKind::Mass => "mass",
        }
    }
}

/// A file sent with the message; with a `content_id` it is an inline part that
/// the HTML refers to as `cid:<content_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// File name shown to the recipient.
    pub filename: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The bytes (base64 when serialised).
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub data: Vec<u8>,
    /// For inline parts (images in the HTML), the Content-ID without brackets.
    pub content_id: Option<String>,
}

impl Attachment {
    /// Checks what a message cannot be built with: a file name with a control
    /// character, a content type that is not `type/subtype` (RFC 2045 tokens,
    /// no parameters), or a Content-ID that is empty or holds spaces, `<`,
    /// `>` or control characters. [`Template::build`](crate::Template::build)
    /// runs the same check, so a caller that validates first never sees a
    /// build fail for these.
    pub fn validate(&self) -> Result<()> {
        if self.filename.trim().is_empty() {
            return Err(Error::Invalid {
                field: "attachment filename",
                rule: "must not be empty".into(),
            });
        }
        check_header_value("attachment filename", &self.filename)?;
        if let Some(position) = self.filename.find('\t') {
            return Err(Error::HeaderInjection {
                header: "attachment filename".into(),
                position,
            });
        }
        let valid_token = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
        };
        match self.content_type.split_once('/') {
            Some((a, b)) if valid_token(a) && valid_token(b) => {}
            _ => {
                return Err(Error::Invalid {
                    field: "attachment content_type",
                    rule: format!("`{}` is not a MIME type (type/subtype)", self.content_type),
                });
            }
        }
        if let Some(cid) = &self.content_id
            && (cid.is_empty()
                || cid.contains(['<', '>', ' '])
                || cid.chars().any(char::is_control))
        {
            return Err(Error::Invalid {
                field: "attachment content_id",
                rule: "must be non-empty, without spaces, `<`, `>` or control characters".into(),
            });
        }
        Ok(())
    }
}

/// Everything about one message except its content.
#[derive(Debug, Clone, Copy)]
pub struct BuildParams<'a> {
    /// The platform sending on the user's behalf.
    pub platform: &'a Platform,
    /// The CRM user the message is from.
    pub sender: &'a SenderIdentity,
    /// The recipient.
    pub to: &'a Mailbox,
    /// Where replies go, if not to `From`.
    pub reply_to: Option<&'a Mailbox>,
    /// Individual or mass.
    pub kind: SendKind,
    /// The message's number, from which tokens and the Message-ID derive.
    pub message: MessageRef,
    /// The campaign's number, for `Feedback-ID`.
    pub campaign: Option<crate::CampaignId>,
    /// The `Date:` of the message.
    pub date: DateTime<Utc>,
    /// Files to attach.
    pub attachments: &'a [Attachment],
}

/// SMTP envelope: who bounces go to, and who receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `MAIL FROM`: the VERP address on the platform's bounce domain.
    pub mail_from: String,
    /// `RCPT TO`.
    pub rcpt_to: String,
}

/// A built message, ready to be DKIM-signed and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The SMTP envelope.
    pub envelope: Envelope,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// The RFC 5322 message, CRLF line endings.
    pub message: Vec<u8>,
}

struct MessageUrls<'a> {
    tracker: &'a Tracker,
    message: MessageRef,
}

impl Urls for MessageUrls<'_> {
    fn link(&self, index: u16) -> String {
        self.tracker.click_url(self.message, index)
    }
    fn open(&self) -> String {
        self.tracker.open_url(self.message)
    }
    fn unsubscribe(&self) -> String {
        self.tracker.unsubscribe_url(self.message)
    }
}

impl CompiledTemplate {
    /// Renders this template with one recipient's `values` and writes the
    /// message: headers per R-MSG-1 (`Sender:` while the domain is unverified),
    /// R-MSG-3 (every header value checked) and R-MSG-6 (unsubscribe headers for
    /// mass mail), multipart/alternative bodies, attachments and inline parts.
    pub fn build(
        &self,
        values: &MergeValues,
        params: &BuildParams<'_>,
        tracker: &Tracker,
    ) -> Result<OutgoingEmail> {
        let urls = MessageUrls {
            tracker,
            message: params.message,
        };
        let subject = self
            .render_part(Part::Subject, values, &urls)
            .unwrap_or_default();
        check_header_value("Subject", &subject)?;
        for (field, mailbox) in [
            ("From", Some(&params.sender.user)),
            ("To", Some(params.to)),
            ("Reply-To", params.reply_to),
            ("Sender", Some(&params.platform.sender)),
        ] {
            if let Some(name) = mailbox.and_then(|m| m.name.as_deref()) {
                check_header_value(field, name)?;
            }
        }
        if params.kind == SendKind::Mass && !self.has_unsubscribe_link() {
            return Err(Error::Invalid {
                field: "template",
                rule: "a mass email needs an unsubscribe link: add {{links.unsubscribe}} or compile with TrackingOptions::unsubscribe_link".into(),
            });
        }
        let message_id = tracker.message_id(params.message, &params.platform.message_id_domain);
        let mut builder = MessageBuilder::new()
            .from(params.sender.user.to_builder())
            .to(params.to.to_builder());
        // Text that looks like an RFC 2047 encoded word would be decoded by
        // mail programs into something else than the user typed: such a
        // subject is written encoded, whole.
        builder = if looks_encoded(&subject) {
            builder.header(
                "Subject",
                HeaderType::Raw(Raw::new(encoded_words(&subject))),
            )
        } else {
            builder.subject(subject)
        };
        let mut builder = builder
            .date(mail_builder::headers::date::Date::new(
                params.date.timestamp(),
            ))
            .message_id(message_id.clone());
        if !params.sender.domain_verified {
            builder = builder.sender(params.platform.sender.to_builder());
        }
        if let Some(reply_to) = params.reply_to {
            builder = builder.reply_to(reply_to.to_builder());
        }
        if params.kind == SendKind::Mass {
            builder = builder
                .header(
                    "List-Unsubscribe",
                    HeaderType::Raw(Raw::new(format!("<{}>", urls.unsubscribe()))),
                )
                .header(
                    "List-Unsubscribe-Post",
                    HeaderType::Raw(Raw::new("List-Unsubscribe=One-Click")),
                );
        }
        builder = builder.header(
            "Feedback-ID",
            HeaderType::Raw(Raw::new(format!(
                "{}:{}:{}:{}",
                params.campaign.map_or(0, |c| c.0),
                params.message.account,
                params.kind.feedback_type(),
                params.platform.feedback_sender
            ))),
        );
        if let Some(text) = self.render_part(Part::Text, values, &urls) {
            builder = builder.text_body(text);
        }
        if let Some(html) = self.render_part(Part::Html, values, &urls) {
            builder = builder.html_body(html);
        }
        for a in params.attachments {
            a.validate()?;
            builder = match &a.content_id {
                Some(cid) => {
                    builder.inline(a.content_type.as_str(), cid.as_str(), a.data.as_slice())
                }
                None => builder.attachment(
                    a.content_type.as_str(),
                    a.filename.as_str(),
                    a.data.as_slice(),
                ),
            };
        }
        let mut message = Vec::new();
        builder.serialize(&mut message);
        Ok(OutgoingEmail {
            envelope: Envelope {
                mail_from: tracker.verp_address(params.message, &params.platform.bounce_domain),
                rcpt_to: params.to.address.as_str().to_owned(),
            },
            message_id,
            message,
        })
    }
}

/// Serialises bytes as one base64 string (a JSON array of numbers would be
/// four times the size).
mod base64_bytes {
    use data_encoding::BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
/// Whether `text` holds something a mail program could take for an RFC 2047
/// encoded word (`=?charset?q?…?=`).
fn looks_encoded(text: &str) -> bool {
    text.find("=?")
        .is_some_and(|start| text[start + 2..].contains("?="))
}

/// `text` as RFC 2047 `B` encoded words of at most 75 characters each
/// (45 bytes of UTF-8, never a character split), separated by spaces where
/// the header may be folded.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?utf-8?b?{}?=", data_encoding::BASE64.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}
