//! Inbound reports (R-EVT-5, R-API-3): delivery status notifications (RFC 3464
//! `multipart/report; report-type=delivery-status`), spam complaints (ARF, RFC
//! 5965 `report-type=feedback-report`), auto-replies, and the plain-text
//! bounces of older MTAs; classified and mapped back to their message.
//!
//! Mapping: the envelope sender of every Herald message is its VERP address
//! (`b-<signed token>@bounce domain`), which comes back as the DSN's recipient
//! (To, Delivered-To) and in the returned headers (Return-Path), and as the
//! ARF report's `Original-Mail-From`. Every `b-…@` candidate in the report is
//! tried against the tracker; only a correctly signed one maps.

use herald_message::{MessageRef, TokenKind, Tracker};
use herald_schedule::{BounceClass, enhanced_code, permanent_class};
use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;

/// What an inbound message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum InboundKind {
    /// A delivery status notification, one entry per recipient.
    Dsn(Vec<DsnRecipient>),
    /// A spam complaint (ARF `Feedback-Type: abuse`, or another feedback type).
    Complaint {
        /// The feedback type (`abuse`, `fraud`, …).
        feedback_type: String,
    },
    /// An out-of-office or other automatic reply: never a bounce.
    AutoReply,
    /// Nothing Herald acts on.
    Other,
}

/// One recipient's part of a DSN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DsnRecipient {
    /// `Final-Recipient` (or `Original-Recipient`), without the address type.
    pub recipient: String,
    /// `Action`: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, the RFC 3463 code (`5.1.1`).
    pub status: Option<String>,
    /// `Diagnostic-Code`, without the type (`550 5.1.1 user unknown`).
    pub diagnostic: Option<String>,
    /// Hard, soft or blocked; `None` for delays and successes (no bounce).
    pub class: Option<BounceClass>,
}

/// A parsed inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inbound {
    /// What it is.
    pub kind: InboundKind,
    /// The message it is about, when a signed VERP token was found in it.
    pub message: Option<MessageRef>,
}

const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "abwesenheit",
    "automatische antwort",
    "réponse automatique",
    "absence",
    "respuesta automática",
    "fuera de la oficina",
    "fuori sede",
    "risposta automatica",
    "autosvar",
    "frånvaro",
    "fravær",
];

const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "delivery status notification",
    "mail delivery failed",
    "delivery failure",
    "returned mail",
    "failure notice",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "échec de la remise",
    "no se puede entregar",
    "error de entrega",
    "mail delivery system",
    "delivery has failed",
];

/// Classes one DSN recipient from its action, status and diagnostic.
pub fn classify(
    action: &str,
    status: Option<&str>,
    diagnostic: Option<&str>,
) -> Option<BounceClass> {
    let action = action.trim().to_ascii_lowercase();
    if action != "failed" {
        return None;
    }
    let code = status.and_then(enhanced_code).or_else(|| {
        // No usable Status: the enhanced code after the basic code in the diagnostic.
        diagnostic.and_then(|d| d.split_whitespace().skip(1).find_map(enhanced_code))
    });
    Some(match code {
        // Temporary classes, and the permanent codes that mean "not now" rather
        // than "never": mailbox full (5.2.2) and delivery time expired (5.4.7).
        Some((4, _, _)) | Some((5, 2, 2)) | Some((5, 4, 7)) => BounceClass::Soft,
        // `permanent_class` reads the enhanced code at the start of its text.
        Some((c, s, d)) => permanent_class(&format!("{c}.{s}.{d} {}", diagnostic.unwrap_or(""))),
        None if diagnostic.is_some_and(|d| d.trim_start().starts_with('4')) => BounceClass::Soft,
        None => permanent_class(diagnostic.unwrap_or("")),
    })
}

/// Splits a `message/delivery-status` body into its field groups (the first is
/// per-message, the rest per-recipient), unfolding continuation lines.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn after_type(v: &str) -> String {
    // `rfc822; user@example.com` / `smtp; 550 …`
    v.split_once(';')
        .map_or(v, |(_, rest)| rest)
        .trim()
        .trim_matches(['<', '>'])
        .to_owned()
}

fn dsn_recipients(status_text: &str) -> Vec<DsnRecipient> {
    field_groups(status_text)
        .into_iter()
        .filter_map(|group| {
            let get = |name: &str| {
                group
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let recipient = get("final-recipient")
                .or_else(|| get("original-recipient"))
                .map(|v| after_type(&v))?;
            let action = get("action").unwrap_or_default().to_ascii_lowercase();
            let status =
                get("status").map(|s| s.split_whitespace().next().unwrap_or("").to_owned());
            let diagnostic = get("diagnostic-code").map(|v| after_type(&v));
            let class = classify(&action, status.as_deref(), diagnostic.as_deref());
            Some(DsnRecipient {
                recipient,
                action,
                status,
                diagnostic,
                class,
            })
        })
        .collect()
}

/// The first correctly signed VERP token anywhere in `raw`.
fn find_verp(raw: &str, tracker: &Tracker) -> Option<MessageRef> {
    let lower = raw.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("b-") {
        let start = from + i;
        from = start + 2;
        if start > 0 && lower.as_bytes()[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let token: String = lower[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || ('2'..='7').contains(c))
            .collect();
        if token.len() < 20 || !lower[start + 2 + token.len()..].starts_with('@') {
            continue;
        }
        if let Ok(t) = tracker.decode_verp(&format!("b-{token}@x"))
            && t.kind == TokenKind::Bounce
        {
            return Some(t.message);
        }
    }
    None
}

/// Parses an inbound message: what it is, and which message it is about.
pub fn parse(raw: &[u8], tracker: &Tracker) -> Inbound {
    let text = String::from_utf8_lossy(raw);
    let message = find_verp(&text, tracker);
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Inbound {
            kind: InboundKind::Other,
            message,
        };
    };
    let report_type = msg
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .map(|ct| {
            ct.attribute("report-type")
                .unwrap_or("")
                .to_ascii_lowercase()
        });
    let part_text = |ctype: &str, subtype: &str| {
        msg.parts.iter().find_map(|p| {
            let ct = p.content_type()?;
            (ct.ctype().eq_ignore_ascii_case(ctype)
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subtype)))
            .then(|| String::from_utf8_lossy(p.contents()).into_owned())
        })
    };
    let feedback = part_text("message", "feedback-report");
    if report_type.as_deref() == Some("feedback-report") || feedback.is_some() {
        let feedback_type = feedback
            .as_deref()
            .and_then(|f| {
                field_groups(f)
                    .into_iter()
                    .flatten()
                    .find(|(k, _)| k == "feedback-type")
                    .map(|(_, v)| v.to_ascii_lowercase())
            })
            .unwrap_or_else(|| "abuse".into());
        return Inbound {
            kind: InboundKind::Complaint { feedback_type },
            message,
        };
    }
    if let Some(status) = part_text("message", "delivery-status")
        .or_else(|| part_text("message", "global-delivery-status"))
    {
        return Inbound {
            kind: InboundKind::Dsn(dsn_recipients(&status)),
            message,
        };
    }
    let subject = msg.subject().unwrap_or("").to_lowercase();
    // An out-of-office subject wins: such replies are never bounces (R-EVT-5).
    if AUTO_REPLY_SUBJECTS.iter().any(|s| subject.contains(s)) {
        return Inbound {
            kind: InboundKind::AutoReply,
            message,
        };
    }
    // An old-style text bounce: a failure subject and an SMTP reply in the body.
    if BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s)) {
        let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
        if let Some((line, code)) = body.lines().find_map(|l| {
            l.split_whitespace()
                .find_map(enhanced_code)
                .map(|c| (l.trim().to_owned(), c))
        }) {
            let recipient = body
                .split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ':')
                .find(|w| {
                    w.contains('@')
                        && !w.to_ascii_lowercase().starts_with("b-")
                        && !w.to_ascii_lowercase().contains("mailer-daemon")
                })
                .unwrap_or("")
                .to_owned();
            let status = format!("{}.{}.{}", code.0, code.1, code.2);
            let class = classify("failed", Some(&status), Some(&line));
            return Inbound {
                kind: InboundKind::Dsn(vec![DsnRecipient {
                    recipient,
                    action: "failed".into(),
                    status: Some(status),
                    diagnostic: Some(line),
                    class,
                }]),
                message,
            };
        }
    }
    // Bounces carry Auto-Submitted too, so the headers count only after them.
    let auto_submitted = msg
        .header_raw("Auto-Submitted")
        .map(|v| v.trim().to_ascii_lowercase());
    let is_auto_reply = auto_submitted
        .as_deref()
        .is_some_and(|v| v.starts_with("auto-replied"))
        || msg.header_raw("X-Autoreply").is_some()
        || msg.header_raw("X-Autorespond").is_some()
        || msg
            .header_raw("Precedence")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("auto_reply"));
    if is_auto_reply {
        return Inbound {
            kind: InboundKind::AutoReply,
            message,
        };
    }
    Inbound {
        kind: InboundKind::Other,
        message,
    }
}
