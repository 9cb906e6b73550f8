//! Inbound reports (R-EVT-5, R-API-3): delivery status notifications (RFC 3464
//! `multipart/report; report-type=delivery-status`), spam complaints (ARF, RFC
//! 5965 `report-type=feedback-report`), auto-replies (RFC 3834), and the
//! plain-text bounces of MTAs that write no DSN; classified per recipient and
//! mapped back to their message.
//!
//! What a message is, in this order:
//! 1. a complaint: an ARF report, or a `message/feedback-report` part, or
//!    (MIME broken) ARF's `Feedback-Type:` field with its `Version:`;
//! 2. a DSN: a `message/delivery-status` part, or (MIME broken or missing)
//!    the DSN's per-recipient fields (`Final-Recipient:` with `Action:` or
//!    `Status:`) in the text;
//! 3. a plain-text bounce: from a mailer daemon or postmaster, or with an
//!    empty return path, or a bounce subject, or the wording of delivery
//!    software ("could not be delivered", "permanent error", …). Bounces often
//!    carry `Auto-Submitted: auto-replied` too (Exim does), so this comes
//!    before the auto-reply headers; each recipient the text names is one
//!    entry, with the text that follows it as its diagnostic;
//! 4. an auto-reply: an out-of-office subject, `Auto-Submitted: auto-replied`,
//!    `X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply`;
//! 5. anything else: other.
//!
//! Each recipient is judged by [`herald_schedule::BounceRules`] from its
//! action, status and diagnostic together.
//!
//! Mapping: the envelope sender of every Herald message is its VERP address
//! (`b-<signed token>@bounce domain`), which comes back as the DSN's recipient
//! (To, Delivered-To) and in the returned headers (Return-Path), and as the
//! ARF report's `Original-Mail-From`. Every `b-…@` candidate in the report is
//! tried against the tracker; only a correctly signed one maps.

use herald_message::{MessageRef, TokenKind, Tracker};
use herald_schedule::{BounceClass, BounceReason, BounceRules, Evidence, find_enhanced_code};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// What an inbound message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InboundKind {
    /// A delivery status notification (or a plain-text bounce), one entry per
    /// recipient in the order the report gives them.
    Dsn {
        /// The recipients.
        recipients: Vec<DsnRecipient>,
    },
    /// A spam complaint (ARF `Feedback-Type: abuse`, or another feedback type).
    Complaint {
        /// The feedback type (`abuse`, `fraud`, …).
        feedback_type: String,
    },
    /// An out-of-office or other automatic reply: never a bounce.
    #[serde(rename = "autoreply")]
    AutoReply,
    /// Nothing Herald acts on.
    Other,
}

impl InboundKind {
    /// The name `herald-worker classify` prints: `dsn`, `complaint`, `autoreply`, `other`.
    pub fn name(&self) -> &'static str {
        match self {
            InboundKind::Dsn { .. } => "dsn",
            InboundKind::Complaint { .. } => "complaint",
            InboundKind::AutoReply => "autoreply",
            InboundKind::Other => "other",
        }
    }

    /// The recipients of a DSN; none for the other kinds.
    pub fn recipients(&self) -> &[DsnRecipient] {
        match self {
            InboundKind::Dsn { recipients } => recipients,
            _ => &[],
        }
    }
}

/// What `herald-worker classify` prints for a message: its kind and its
/// recipients (none for complaints, auto-replies and others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification<'a> {
    /// `dsn`, `complaint`, `autoreply` or `other`.
    pub kind: &'static str,
    /// The recipients, in the order the report gives them.
    pub recipients: &'a [DsnRecipient],
    /// A complaint's feedback type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<&'a str>,
}

impl InboundKind {
    /// The classification of this kind, as `herald-worker classify` prints it.
    pub fn classification(&self) -> Classification<'_> {
        Classification {
            kind: self.name(),
            recipients: self.recipients(),
            feedback_type: match self {
                InboundKind::Complaint { feedback_type } => Some(feedback_type),
                _ => None,
            },
        }
    }
}

/// One recipient's part of a DSN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DsnRecipient {
    /// `Final-Recipient` (or `Original-Recipient`), without the address type;
    /// empty when a text bounce names none.
    #[serde(rename = "address")]
    pub recipient: String,
    /// `Action`: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, the RFC 3463 code (`5.1.1`).
    pub status: Option<String>,
    /// `Diagnostic-Code`, without the type (`550 5.1.1 user unknown`), or the
    /// text a plain bounce gives for the recipient.
    pub diagnostic: Option<String>,
    /// Hard, soft or blocked; `None` for delays and successes (no bounce).
    pub class: Option<BounceClass>,
    /// Why, for a failure.
    pub reason: Option<BounceReason>,
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
    "auto response",
    "autoresponse",
    "on vacation",
    "vacation reply",
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
    "undelivered",
    "delivery status notification",
    "delivery notification",
    "delivery report",
    "mail delivery failed",
    "mail delivery failure",
    "delivery failure",
    "delivery failed",
    "failed delivery",
    "delivery problem",
    "returned mail",
    "returned to sender",
    "return receipt",
    "failure notice",
    "nondeliverable",
    "non-deliverable",
    "non delivery",
    "non-delivery",
    "could not send message",
    "could not be delivered",
    "undeliverable",
    "message not delivered",
    "not delivered",
    "delivery has failed",
    "mail system error",
    "mail delivery system",
    "rejected:",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "échec de la remise",
    "non recapitabile",
    "no se puede entregar",
    "error de entrega",
    "no entregado",
    "onbestelbaar",
    "kan inte levereras",
    "nie dostarczono",
    "未送達",
    "配信",
    "退信",
    "エラー通知",
];

/// Words of delivery software in a bounce's text (lower case).
const BOUNCE_WORDS: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "wasn't delivered",
    "could not deliver",
    "could not be sent",
    "undeliverable",
    "permanent error",
    "permanent fatal error",
    "delivery has failed",
    "delivery to the following recipient",
    "failed to deliver",
    "unable to deliver",
    "i'm afraid i wasn't able to deliver",
    "following address(es) failed",
    "the following addresses had permanent",
    "the following recipient",
    "mail delivery software",
    "delivery status notification",
    "delivery failed",
    "returned mail",
    "giving up on",
    "message could not be",
    "your message did not reach",
    "did not reach the following",
    "was undeliverable",
    "message was rejected",
    "delivery failure",
    "non-delivery",
    "smtp error from remote",
    "remote host said",
    "said:",
];

const DELAY_WORDS: &[&str] = &[
    "will continue to try",
    "will keep trying",
    "will be retried",
    "still trying",
    "no action is required on your part",
    "has not yet been delivered",
    "this is a warning",
    "this is just a warning",
    "delivery is delayed",
    "message delayed",
    "delivery delayed",
    "has been delayed",
    "warning: message",
    "still undelivered",
    "not been delivered yet",
];

/// Judges one DSN recipient from its action, status and diagnostic: its class
/// and reason. A failure (`failed`, or no action and no 2.x.x status) is
/// judged as final; a delay (`delayed`) is a temporary failure, soft at
/// most (reason `expired` when the text names none); a success (`delivered`,
/// `relayed`, `expanded`) has no class.
pub fn classify(
    action: &str,
    status: Option<&str>,
    diagnostic: Option<&str>,
) -> (Option<BounceClass>, Option<BounceReason>) {
    classify_at(action, status, diagnostic, None)
}

fn classify_at(
    action: &str,
    status: Option<&str>,
    diagnostic: Option<&str>,
    stage: Option<herald_schedule::Stage>,
) -> (Option<BounceClass>, Option<BounceReason>) {
    let action = action.trim().to_ascii_lowercase();
    let status_code = status.and_then(herald_schedule::enhanced_code);
    let delayed = action == "delayed";
    let failed = match action.as_str() {
        "failed" | "delayed" => true,
        "" => !matches!(status_code, Some((2, _, _))),
        _ => false,
    };
    if !failed {
        return (None, None);
    }
    let v = BounceRules::builtin().judge(&Evidence {
        code: None,
        status,
        diagnostic,
        gave_up: !delayed,
        stage,
    });
    if delayed {
        let reason = match v.reason {
            BounceReason::Undefined => BounceReason::Expired,
            r => r,
        };
        let class = match v.class {
            BounceClass::Hard => BounceClass::Soft,
            c => c,
        };
        return (Some(class), Some(reason));
    }
    (Some(v.class), Some(v.reason))
}

/// A DSN's `Action`, with the words some MTAs use instead of RFC 3464's
/// (`failure`, `error`, `undeliverable`: failed).
fn normal_action(field: &str) -> String {
    let action = field
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches([';', ',', '.'])
        .to_ascii_lowercase();
    if action.starts_with("fail")
        || action == "error"
        || action == "expired"
        || action.starts_with("undeliver")
        || action == "bounced"
    {
        "failed".into()
    } else {
        action
    }
}

/// The SMTP command a failure answered, as MTAs write it beside the reply
/// (`in reply to end of DATA command`, `after RCPT TO`, …), or in a session
/// transcript (`>>> DATA` then `<<< 550 …`).
fn stage_of(text: &str) -> Option<herald_schedule::Stage> {
    use herald_schedule::Stage;
    let lower = text.to_ascii_lowercase();
    // In a transcript, the last command before the refusal (with PIPELINING
    // a refusal after `>>> DATA` may answer RCPT TO; the judgement then leans
    // on the code, and a 5.1.1 still says the address is unknown).
    let mut command = None;
    for line in lower.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix(">>>") {
            let c = c.trim();
            command = Some(if c == "." || c.starts_with("data") {
                Stage::Data
            } else if c.starts_with("rcpt") {
                Stage::Recipient
            } else if c.starts_with("mail") {
                Stage::Sender
            } else {
                Stage::Session
            });
        } else if let Some(reply) = line.strip_prefix("<<<").map(str::trim_start) {
            if reply.starts_with("354") {
                command = Some(Stage::Data);
            } else if reply.starts_with(['4', '5']) && command.is_some() {
                return command;
            }
        }
    }
    let find = |words: &[&str]| words.iter().filter_map(|w| lower.find(w)).min();
    [
        (
            find(&[
                "in reply to end of data",
                "in reply to data",
                "after end of data",
                "after data",
                "smtp command data",
                "for text command",
                "[data]",
                "after the data command",
            ]),
            Stage::Data,
        ),
        (
            find(&[
                "in reply to rcpt to",
                "after rcpt to",
                "after rcpt command",
                "rcpt to:<",
                "[rcpt_to]",
                "in reply to rcpt",
                "does not like recipient",
                "did not like our rcpt to",
                "(after rcpt to)",
                "smtp:rcpt",
                "rcpt to generated",
                "rcpt to response",
            ]),
            Stage::Recipient,
        ),
        (
            find(&["in reply to mail from", "after mail from", "[mail_from]"]),
            Stage::Sender,
        ),
        (
            find(&[
                "after initial connection",
                "in reply to helo",
                "in reply to ehlo",
                "after helo",
                "after ehlo",
                "my name was rejected",
                "[connect]",
            ]),
            Stage::Session,
        ),
    ]
    .into_iter()
    .filter_map(|(at, stage)| at.map(|i| (i, stage)))
    .min_by_key(|(i, _)| *i)
    .map(|(_, s)| s)
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
        } else if let Some((k, v)) = line.split_once(':')
            && !k.contains(' ')
        {
            let key = k.trim().to_ascii_lowercase();
            // Some MTAs (AOL) leave out the blank line between recipients: a
            // second recipient field of the same name starts the next group.
            let has = |name: &str| current.iter().any(|(k, _)| k == name);
            let next_recipient = match key.as_str() {
                "final-recipient" => has("final-recipient"),
                "original-recipient" => has("original-recipient"),
                _ => false,
            };
            if next_recipient {
                groups.push(std::mem::take(&mut current));
            }
            current.push((key, v.trim().to_owned()));
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
        .trim()
        .to_owned()
}

/// The per-recipient entries of a DSN's fields. `explanation` is the
/// human-readable part, searched for a recipient whose fields give no
/// diagnostic.
fn dsn_recipients(status_text: &str, explanation: &str) -> Vec<DsnRecipient> {
    // The DSN names its recipients: any address may be one (postmaster too).
    let blocks = text_blocks(explanation, None);
    let mut seen = std::collections::HashSet::new();
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
                .or_else(|| get("x-actual-recipient"))
                .map(|v| after_type(&v))?;
            // One entry per address (an alias loop lists one address many times).
            if !seen.insert(recipient.to_ascii_lowercase()) {
                return None;
            }
            if get("action").is_none() && get("status").is_none() {
                return None;
            }
            let action = normal_action(&get("action").unwrap_or_default());
            let status_field = get("status").unwrap_or_default();
            let status = status_field
                .split_whitespace()
                .next()
                .filter(|s| herald_schedule::enhanced_code(s).is_some())
                .map(str::to_owned);
            let lower = recipient.to_ascii_lowercase();
            let explained = blocks
                .iter()
                .find(|(a, _)| *a == lower)
                .map(|(_, d)| d.clone())
                .filter(|d| !d.is_empty());
            // No diagnostic: the text about the recipient, or a Status field
            // that holds a reply instead of a code (`553 Exceeded maximum …`).
            let diagnostic = get("diagnostic-code")
                .map(|v| after_type(&v))
                .filter(|d| !d.is_empty())
                .or_else(|| explained.clone())
                .or_else(|| {
                    (status.is_none() && !status_field.is_empty()).then(|| status_field.clone())
                });
            let stage = diagnostic
                .as_deref()
                .and_then(stage_of)
                .or_else(|| explained.as_deref().and_then(stage_of))
                .or_else(|| stage_of(explanation));
            let (class, reason) =
                classify_at(&action, status.as_deref(), diagnostic.as_deref(), stage);
            Some(DsnRecipient {
                recipient,
                action,
                status,
                diagnostic,
                class,
                reason,
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
    Inbound {
        kind: classify_message(raw),
        message: find_verp(&text, tracker),
    }
}

/// What an inbound message is, without mapping it to a message (no tracker,
/// no configuration needed: `herald-worker classify`).
pub fn classify_message(raw: &[u8]) -> InboundKind {
    // Blank lines or an mbox `From ` line before the headers.
    let mut raw = raw.trim_ascii_start();
    if raw.starts_with(b"From ")
        && let Some(end) = raw.iter().position(|&b| b == b'\n')
    {
        raw = &raw[end + 1..];
    }
    let Some(msg) = MessageParser::default().parse(raw) else {
        return InboundKind::Other;
    };
    let whole = String::from_utf8_lossy(raw);
    classify_parsed(&msg, &whole)
}

fn is_type(p: &mail_parser::MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    p.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

fn part_text(p: &mail_parser::MessagePart<'_>) -> String {
    match &p.body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
        PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
        PartType::Multipart(_) => String::new(),
    }
}

fn classify_parsed(msg: &Message<'_>, whole: &str) -> InboundKind {
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
    let find_part = |ctype: &str, subtype: &str| {
        msg.parts
            .iter()
            .find(|p| is_type(p, ctype, subtype))
            .map(part_text)
    };
    // 1. Complaints.
    let feedback = find_part("message", "feedback-report");
    let loose_arf = feedback.is_none() && loose_feedback_type(whole).is_some();
    if report_type.as_deref() == Some("feedback-report") || feedback.is_some() || loose_arf {
        let feedback_type = feedback
            .as_deref()
            .and_then(|f| {
                field_groups(f)
                    .into_iter()
                    .flatten()
                    .find(|(k, _)| k == "feedback-type")
                    .map(|(_, v)| v.to_ascii_lowercase())
            })
            .or_else(|| loose_feedback_type(whole))
            .unwrap_or_else(|| "abuse".into());
        return InboundKind::Complaint { feedback_type };
    }
    let explanation = explanation_text(msg);
    // Amazon SES notifications (JSON, often through SNS e-mail): bounces,
    // complaints and deliveries in SES's own fields.
    if let Some(kind) = ses_notification(&explanation) {
        return kind;
    }
    // 2. DSNs, with their delivery-status part or (MIME broken) fields in the text.
    // Every delivery-status part counts (some reports carry two).
    let mut parts: Vec<String> = msg
        .parts
        .iter()
        .filter(|p| {
            is_type(p, "message", "delivery-status")
                || is_type(p, "message", "global-delivery-status")
        })
        .map(part_text)
        .collect();
    if parts.is_empty() {
        parts.extend(loose_status_fields(&explanation).or_else(|| loose_status_fields(whole)));
    }
    let recipients: Vec<DsnRecipient> = parts
        .iter()
        .flat_map(|status| dsn_recipients(status, &explanation))
        .collect();
    if !recipients.is_empty() {
        return InboundKind::Dsn { recipients };
    }
    let subject = msg.subject().unwrap_or("").to_lowercase();
    let auto_subject = AUTO_REPLY_SUBJECTS.iter().any(|s| subject.contains(s));
    // A person's out-of-office reply whose subject quotes a bounce's.
    if auto_subject && !from_daemon(msg) {
        return InboundKind::AutoReply;
    }
    // 3. Plain-text bounces (before the auto-reply headers: bounces carry them too).
    if looks_like_bounce(msg, &subject, &explanation) {
        let returned_to = returned_recipients(msg);
        let recipients = text_bounce(msg, &subject, &explanation, &returned_to);
        if !recipients.is_empty() {
            return InboundKind::Dsn { recipients };
        }
    }
    // 4. Auto-replies.
    if auto_subject || has_auto_reply_headers(msg) {
        return InboundKind::AutoReply;
    }
    InboundKind::Other
}

/// The JSON value at the start of `text` (mail line breaks removed), ignoring
/// what follows it.
fn first_json(text: &str) -> Option<serde_json::Value> {
    let json: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    serde_json::Deserializer::from_str(&json)
        .into_iter()
        .next()?
        .ok()
}

/// An Amazon SES notification (`{"notificationType": "Bounce" | "Complaint" |
/// "Delivery", …}`, as SES publishes it to SNS and SNS mails it).
fn ses_notification(text: &str) -> Option<InboundKind> {
    // Through SNS e-mail the notification is a JSON string in the SNS
    // envelope's `Message`.
    if !text.contains("{\"notificationType\"")
        && let Some(start) = text.find('{')
        && text.contains("\"Message\"")
    {
        let envelope = first_json(&text[start..])?;
        let inner = envelope.get("Message")?.as_str()?;
        return inner
            .contains("\"notificationType\"")
            .then(|| ses_notification(inner))
            .flatten();
    }
    let start = text.find("{\"notificationType\"")?;
    let value = first_json(&text[start..])?;
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    match value.get("notificationType")?.as_str()? {
        "Bounce" => {
            let bounce = value.get("bounce")?;
            let transient = s(bounce, "bounceType").as_deref() == Some("Transient");
            let recipients = bounce
                .get("bouncedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    let recipient = s(r, "emailAddress")?;
                    let status = s(r, "status");
                    let diagnostic = s(r, "diagnosticCode").map(|d| after_type(&d));
                    let action = if transient {
                        "delayed".to_owned()
                    } else {
                        s(r, "action").unwrap_or_else(|| "failed".into())
                    };
                    let (class, reason) =
                        classify(&action, status.as_deref(), diagnostic.as_deref());
                    Some(DsnRecipient {
                        recipient,
                        action,
                        status,
                        diagnostic,
                        class,
                        reason,
                    })
                })
                .collect();
            Some(InboundKind::Dsn { recipients })
        }
        "Complaint" => Some(InboundKind::Complaint {
            feedback_type: value
                .get("complaint")
                .and_then(|c| s(c, "complaintFeedbackType"))
                .unwrap_or_else(|| "abuse".into())
                .to_ascii_lowercase(),
        }),
        "Delivery" => {
            let delivery = value.get("delivery")?;
            let recipients = delivery
                .get("recipients")?
                .as_array()?
                .iter()
                .filter_map(|r| r.as_str())
                .map(|r| DsnRecipient {
                    recipient: r.to_owned(),
                    action: "delivered".into(),
                    status: Some("2.0.0".into()),
                    diagnostic: s(delivery, "smtpResponse"),
                    class: None,
                    reason: None,
                })
                .collect();
            Some(InboundKind::Dsn { recipients })
        }
        _ => None,
    }
}

fn has_auto_reply_headers(msg: &Message<'_>) -> bool {
    let auto_submitted = msg
        .header_raw("Auto-Submitted")
        .map(|v| v.trim().to_ascii_lowercase());
    auto_submitted
        .as_deref()
        .is_some_and(|v| v.starts_with("auto-replied"))
        || msg.header_raw("X-Autoreply").is_some()
        || msg.header_raw("X-Autorespond").is_some()
        || msg
            .header_raw("Precedence")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("auto_reply"))
}

/// ARF's `Feedback-Type:` where the MIME structure is broken: only with ARF's
/// `Version:` or `User-Agent:` field beside it.
fn loose_feedback_type(whole: &str) -> Option<String> {
    let lower = whole.to_ascii_lowercase();
    let at = lower.find("\nfeedback-type:")?;
    let rest = &whole[at + "\nfeedback-type:".len()..];
    let value = rest.lines().next()?.trim().to_ascii_lowercase();
    let near = &lower[at..(at + 600).min(lower.len())];
    let near_start = &lower[at.saturating_sub(600)..at];
    let has_version = near.contains("\nversion:") || near_start.contains("\nversion:");
    let has_agent = near.contains("\nuser-agent:") || near_start.contains("\nuser-agent:");
    (!value.is_empty() && (has_version || has_agent)).then_some(value)
}

/// DSN fields in the text where there is no delivery-status part (broken or
/// missing MIME boundaries): the lines from the first `Reporting-MTA:`,
/// `Final-Recipient:` or `Original-Recipient:` on, while they look like fields.
fn loose_status_fields(whole: &str) -> Option<String> {
    let lower = whole.to_ascii_lowercase();
    let start = [
        "\nreporting-mta:",
        "\nfinal-recipient:",
        "\noriginal-recipient:",
    ]
    .iter()
    .filter_map(|k| lower.find(k))
    .min()?;
    let tail = &whole[start + 1..];
    if !tail.to_ascii_lowercase().contains("final-recipient:")
        && !tail.to_ascii_lowercase().contains("original-recipient:")
    {
        return None;
    }
    let mut out = String::new();
    let mut blank_run = 0;
    for line in tail.lines() {
        let t = line.trim();
        if t.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
            out.push('\n');
            continue;
        }
        blank_run = 0;
        let fieldlike = line.starts_with([' ', '\t'])
            || line
                .split_once(':')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains(' ') && k.len() < 40);
        if !fieldlike || t.starts_with("--") {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// The human-readable text of a bounce: its text parts (not those of the
/// returned message), cut where a copy of the returned message starts.
fn explanation_text(msg: &Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..msg.text_body_count().max(1) {
        if let Some(t) = msg.body_text(i) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    if text.trim().is_empty()
        && let Some(h) = msg.body_html(0)
    {
        text = strip_tags(&h);
    }
    if text.trim().is_empty() {
        // Broken MIME (a boundary parameter on a line of its own): the raw
        // body without its MIME lines.
        let raw = String::from_utf8_lossy(msg.raw_message());
        let body = raw
            .find("\r\n\r\n")
            .map(|i| &raw[i + 4..])
            .or_else(|| raw.find("\n\n").map(|i| &raw[i + 2..]))
            .unwrap_or("");
        text = body
            .lines()
            .filter(|l| {
                let t = l.trim_start().to_ascii_lowercase();
                !t.starts_with("--") && !t.starts_with("content-") && !t.starts_with("boundary=")
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    cut_returned_copy(&unquote(&text)).to_owned()
}

/// A bounce forwarded as a quotation (`> ` before every line): one level of
/// quoting removed, when most lines carry it.
fn unquote(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let quoted = lines.iter().filter(|l| l.starts_with('>')).count();
    if lines.len() < 4 || quoted * 2 < lines.len() {
        return text.to_owned();
    }
    text.lines()
        .map(|l| {
            l.strip_prefix("> ")
                .or_else(|| l.strip_prefix('>'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The text before the copy of the returned message.
fn cut_returned_copy(text: &str) -> &str {
    const MARKERS: &[&str] = &[
        "------ this is a copy of the message",
        "------ this is a copy of your message",
        "--- below this line is a copy of the message",
        "--- below this line is the original",
        "----- original message -----",
        "-----original message-----",
        "original message follows",
        "--- the header of the original message is following",
        "------ original message ------",
        "----- transcript of session follows -----\n\n\nreturn-path",
        "\nreturn-path: <",
        "\nreceived: from ",
        "\nreceived:from ",
        "content-type: message/rfc822",
        "content-type: text/rfc822-headers",
        "--- the original message ---",
        "--- original message header ---",
        "included is a copy of the message header",
        "------ a copy of the message",
        "--- message follows ---",
        "------- returned message --------",
    ];
    let lower = text.to_ascii_lowercase();
    let cut = MARKERS
        .iter()
        .filter_map(|m| lower.find(m))
        .filter(|&i| i > 0)
        .min()
        .unwrap_or(text.len());
    &text[..cut]
}

/// Whether the sender is delivery software: a mailer daemon or postmaster.
fn from_daemon(msg: &Message<'_>) -> bool {
    let from = msg
        .from()
        .and_then(|a| a.first())
        .map(|a| {
            format!("{} {}", a.name().unwrap_or(""), a.address().unwrap_or("")).to_ascii_lowercase()
        })
        .unwrap_or_default();
    [
        "mailer-daemon",
        "postmaster",
        "mail delivery",
        "mailer daemon",
        "post_master",
        "mail administrator",
        "mdaemon",
    ]
    .iter()
    .any(|d| from.contains(d))
}

fn looks_like_bounce(msg: &Message<'_>, subject: &str, explanation: &str) -> bool {
    let daemon = from_daemon(msg);
    // Auto-replies have an empty return path too (RFC 3834): words must agree.
    let return_path = msg
        .header_raw("Return-Path")
        .map(|r| r.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let null_path = return_path == "<>" || return_path.contains("mailer-daemon");
    let lower = explanation.to_lowercase();
    let subject_says = BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s));
    let words = BOUNCE_WORDS.iter().any(|w| lower.contains(w));
    let failed_header = msg.header_raw("X-Failed-Recipients").is_some();
    // A daemon's message or a bounce subject suffices; an empty return path
    // (auto-replies have one too) needs the wording of delivery software.
    failed_header || daemon || subject_says || (null_path && words)
}

/// The recipients of the returned message (its `To:`), a last resort for a
/// bounce whose text names nobody.
fn returned_recipients(msg: &Message<'_>) -> Vec<String> {
    msg.attachments()
        .find_map(|p| match &p.body {
            PartType::Message(m) => Some(
                m.to()
                    .map(|to| {
                        to.iter()
                            .filter_map(|a| a.address().map(str::to_ascii_lowercase))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

fn text_bounce(
    msg: &Message<'_>,
    subject: &str,
    explanation: &str,
    returned_to: &[String],
) -> Vec<DsnRecipient> {
    let lower = explanation.to_lowercase();
    let delayed = DELAY_WORDS.iter().any(|w| lower.contains(w))
        || subject.contains("delayed")
        || subject.contains("(delay)")
        || subject.contains("warning");
    let own: Vec<String> = [
        msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
        msg.from().and_then(|a| a.first()).and_then(|a| a.address()),
    ]
    .into_iter()
    .flatten()
    .map(str::to_ascii_lowercase)
    .collect();
    let mut blocks = text_blocks(explanation, Some(&own));
    // Exim names the failed recipients in a header: keep the text's order,
    // and add those the text did not name.
    if let Some(listed) = msg.header_raw("X-Failed-Recipients") {
        for a in listed
            .split(',')
            .map(|a| a.trim().trim_matches(['<', '>']).to_ascii_lowercase())
        {
            if !a.is_empty() && !blocks.iter().any(|(b, _)| *b == a) {
                blocks.push((a, String::new()));
            }
        }
    }
    if blocks.is_empty() {
        let diagnostic = diagnostic_of(explanation);
        let addresses: Vec<String> = if returned_to.is_empty() {
            vec![String::new()]
        } else {
            returned_to.to_vec()
        };
        blocks = addresses
            .into_iter()
            .map(|a| (a, diagnostic.clone()))
            .collect();
    } else if blocks.iter().all(|(_, d)| d.trim().is_empty()) {
        // The addresses are listed apart from the reason: one text for all.
        let diagnostic = diagnostic_of(explanation);
        for (_, d) in &mut blocks {
            d.clone_from(&diagnostic);
        }
    }
    blocks
        .into_iter()
        .map(|(address, diagnostic)| {
            let diagnostic = diagnostic.trim().to_owned();
            let status = find_enhanced_code(&diagnostic).map(|(c, s, d)| format!("{c}.{s}.{d}"));
            let action = if delayed { "delayed" } else { "failed" };
            let stage = stage_of(&diagnostic).or_else(|| stage_of(explanation));
            let (class, reason) = classify_at(action, status.as_deref(), Some(&diagnostic), stage);
            DsnRecipient {
                recipient: address,
                action: action.into(),
                status,
                diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
                class,
                reason,
            }
        })
        .collect()
}

/// The lines of a bounce's text that explain the failure, for one text that
/// names no recipient apart: those with a reply code or a failure word.
fn diagnostic_of(explanation: &str) -> String {
    let lines: Vec<&str> = explanation
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let useful: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            herald_schedule::find_basic_code(l).is_some()
                || find_enhanced_code(l).is_some()
                || BounceRules::builtin()
                    .reason_of_text(l)
                    .is_some_and(|r| r != BounceReason::SystemError)
        })
        .take(6)
        .collect();
    if useful.is_empty() {
        lines.into_iter().take(12).collect::<Vec<_>>().join(" ")
    } else {
        useful.join(" ")
    }
}

fn is_address_char(c: char) -> bool {
    c.is_alphanumeric() || "._%+-=!#$&'*/?^`{|}~".contains(c)
}

/// The addresses in a line, in order (bare, `<…>`, or `"…"` quoted).
fn addresses_in(line: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut s = k;
        while s > 0 && is_address_char(chars[s - 1].1) {
            s -= 1;
        }
        let mut e = k + 1;
        while e < chars.len()
            && (chars[e].1.is_alphanumeric() || matches!(chars[e].1, '.' | '-' | '_'))
        {
            e += 1;
        }
        if s == k || e == k + 1 {
            continue;
        }
        let start = chars[s].0;
        let end = if e < chars.len() {
            chars[e].0
        } else {
            line.len()
        };
        let addr = line[start..end].trim_end_matches('.').to_lowercase();
        let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
        if !domain.contains('.') || i == start {
            continue;
        }
        out.push((start, end, addr));
    }
    out
}

/// Addresses that are never a failed recipient: the daemon, the VERP sender.
fn is_system_address(a: &str, own: &[String]) -> bool {
    let local = a.split('@').next().unwrap_or("");
    own.iter().any(|o| o == a)
        || local.starts_with("b-")
        || [
            "mailer-daemon",
            "postmaster",
            "mailerdaemon",
            "noreply",
            "no-reply",
            "abuse",
            "root",
        ]
        .contains(&local)
}

/// Each recipient a bounce's text names, with the text about it: from the
/// address to the next recipient, without lines of the SMTP transcript the
/// sending side wrote (`>>> RCPT TO:`). Addresses named again (`RCPT
/// TO:<…>` in a transcript) add their text to the first mention.
fn text_blocks(text: &str, own: Option<&[String]>) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut current: Option<usize> = None;
    let mut lines_in_block = 0;
    let mut self_contained = false;
    for raw_line in text.lines() {
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        let lower = line.to_lowercase();
        let found: Vec<(usize, usize, String)> = addresses_in(line)
            .into_iter()
            .filter(|(_, _, a)| own.is_none_or(|own| !is_system_address(a, own)))
            .collect();
        // A line that starts with an address (or a label and an address)
        // starts that recipient's block.
        let starts_block = found.first().is_some_and(|(s, _, _)| {
            let before = line[..*s]
                .trim()
                .trim_end_matches(['<', '"', '\''])
                .trim()
                .to_lowercase();
            before.is_empty()
                || before.ends_with(':') && before.len() < 40
                || (before.len() == 3 && before.bytes().all(|b| b.is_ascii_digit()))
                || before.starts_with("to ") && before.len() < 8
                || [
                    "recipient",
                    "address",
                    "to",
                    "rcpt to",
                    "for",
                    "user",
                    "mailbox",
                    "failed",
                    "email",
                    "e-mail",
                    "destinatario",
                    "empfänger",
                    "destinataire",
                ]
                .iter()
                .any(|w| before.trim_end_matches(':').trim().ends_with(w) && before.len() < 40)
        });
        // `>>> RCPT To:<a@b>`: what the server answers next is about a@b.
        if lower.starts_with(">>>")
            && let Some((_, _, addr)) = found.first()
        {
            let i = match blocks.iter().position(|(a, _)| a == addr) {
                Some(i) => i,
                None => {
                    blocks.push((addr.clone(), String::new()));
                    blocks.len() - 1
                }
            };
            push_text(&mut blocks[i].1, command_marker(&lower));
            current = Some(i);
            lines_in_block = 0;
            continue;
        }
        let code_first = line.len() > 4
            && line.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[3] == b' ';
        if starts_block
            && !lower.starts_with(">>>")
            && ![
                "from:",
                "reply-to:",
                "to:",
                "cc:",
                "sender:",
                "subject:",
                "date:",
                "message-id:",
            ]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            let (_, e, addr) = &found[0];
            let rest = line[*e..]
                .trim_start_matches(['>', '"', '\'', ':', ',', ';', ' '])
                .to_owned();
            // `554 <a@b>... reason` says it all on its line: only indented
            // lines continue it (a wrapped Postfix reply); the next lines of
            // an old Sendmail report belong to the next address.
            self_contained = rest.len() > 3 && code_first;
            match blocks.iter().position(|(a, _)| a == addr) {
                Some(i) => {
                    current = Some(i);
                    push_text(&mut blocks[i].1, &rest);
                }
                None => {
                    blocks.push((addr.clone(), rest));
                    current = Some(blocks.len() - 1);
                }
            }
            lines_in_block = 0;
            continue;
        }
        if let Some(i) = current {
            lines_in_block += 1;
            if lower.starts_with(">>>") {
                // Which command the next replies answer, in words stage_of reads.
                push_text(&mut blocks[i].1, command_marker(&lower));
                continue;
            }
            if lines_in_block > 8 || (self_contained && !raw_line.starts_with([' ', '\t'])) {
                continue;
            }
            // An address later in the line that is a known recipient moves the
            // text there (`RCPT TO:<a@b>` answered on the next line).
            if let Some(j) = found
                .iter()
                .find_map(|(_, _, a)| blocks.iter().position(|(b, _)| b == a))
            {
                current = Some(j);
                let stripped = strip_addresses(line);
                push_text(&mut blocks[j].1, &stripped);
                continue;
            }
            push_text(&mut blocks[i].1, line.trim_start_matches("<<<").trim());
        }
    }
    blocks
}

/// A transcript's `>>> COMMAND` line as the words MTAs use beside a reply
/// (`(after RCPT TO)`), kept in the recipient's text for [`stage_of`].
fn command_marker(line: &str) -> &'static str {
    let c = line.trim_start_matches('>').trim_start();
    if c.starts_with("rcpt") {
        "(after RCPT TO)"
    } else if c.starts_with("data") || c == "." {
        "(after DATA)"
    } else if c.starts_with("mail") {
        "(after MAIL FROM)"
    } else {
        ""
    }
}

fn strip_addresses(line: &str) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (s, e, _) in addresses_in(line) {
        out.push_str(&line[last..s]);
        last = e;
    }
    out.push_str(&line[last..]);
    out.trim_matches(['<', '>', ':', ' ']).to_owned()
}

fn push_text(to: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if !to.is_empty() {
        to.push(' ');
    }
    to.push_str(text);
}
