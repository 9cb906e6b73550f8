//! Why a delivery failed, and what that means for the address (R-EVT-5).
//!
//! One judgement serves both places a failure is learnt: an SMTP reply to
//! RCPT TO or DATA (the worker), and a delivery status notification about one
//! recipient (the inbound parser). It reads the reply code, the RFC 3463
//! enhanced status code and the diagnostic text together and gives a
//! [`BounceReason`] from a fixed vocabulary and, from the reason, a
//! [`BounceClass`].
//!
//! The rules are data: `data/bounce-rules.toml` (built in, see
//! [`BounceRules::builtin`]); an operator can load another copy with
//! [`BounceRules::parse`]. The text wins over a code: servers send vague codes
//! (`5.0.0`, `5.7.1`) with precise text (`mailbox full`, `blocked using
//! Spamhaus`), and a specific code in the diagnostic wins over a vague one in
//! the DSN's `Status` field. When nothing is sure the class is soft: a wrong
//! hard bounce blocklists a working address for good, a wrong soft one costs
//! one more attempt later.

use crate::delivery::Stage;
use crate::outbox::BounceClass;
use regex::RegexSet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Why a delivery failed: the fixed vocabulary of reasons (names as in
/// `data/bounce-rules.toml`, in `snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BounceReason {
    /// The mailbox does not exist (hard).
    UserUnknown,
    /// The domain or host does not exist or cannot be routed to (hard).
    HostUnknown,
    /// The mailbox has moved and left no forwarding address (hard).
    HasMoved,
    /// The domain accepts no mail at all (null MX, RFC 7505) (hard).
    NotAccepted,
    /// The mailbox is full (soft).
    MailboxFull,
    /// The message is larger than the receiver takes (soft).
    MessageTooBig,
    /// An administrative limit of the mailbox was exceeded (soft).
    ExceedLimit,
    /// The mailbox exists but is suspended or disabled (soft).
    Suspended,
    /// The message could not be delivered in time; retries gave up (soft).
    Expired,
    /// The receiving system failed (soft).
    SystemError,
    /// The receiving system is full or congested (soft).
    SystemFull,
    /// The network or DNS failed on the way (soft).
    NetworkError,
    /// Too many connections to the receiver (soft).
    TooManyConnections,
    /// The receiver limits the sending rate (soft).
    RateLimited,
    /// The receiver's local delivery program failed (soft).
    MailerError,
    /// The receiver did not understand a command (soft).
    SyntaxError,
    /// The sender's IP, host or domain is on a block list (blocked).
    Blocked,
    /// The message was taken for spam (blocked).
    SpamDetected,
    /// The message was taken to carry a virus (blocked).
    VirusDetected,
    /// The content or its encoding was refused (blocked).
    ContentError,
    /// Refused by the receiver's policy (blocked).
    Policy,
    /// Refused for the sender's reputation or complaint rate (blocked).
    BadReputation,
    /// Refused for a missing or generic reverse DNS name (blocked).
    RequirePtr,
    /// SPF, DKIM or DMARC failed (blocked).
    AuthFailure,
    /// A security requirement (TLS, authentication) was not met (blocked).
    SecurityError,
    /// The envelope sender was refused (blocked).
    Rejected,
    /// The receiver does not relay for this domain (blocked).
    RelayDenied,
    /// The recipient's own filter refused the message (blocked).
    Filtered,
    /// The message does not follow the RFCs the receiver checks (blocked).
    NotCompliant,
    /// Nothing said why (soft).
    Undefined,
}

impl BounceReason {
    /// Every reason, in the order of the documentation.
    pub const ALL: [BounceReason; 30] = [
        BounceReason::UserUnknown,
        BounceReason::HostUnknown,
        BounceReason::HasMoved,
        BounceReason::NotAccepted,
        BounceReason::MailboxFull,
        BounceReason::MessageTooBig,
        BounceReason::ExceedLimit,
        BounceReason::Suspended,
        BounceReason::Expired,
        BounceReason::SystemError,
        BounceReason::SystemFull,
        BounceReason::NetworkError,
        BounceReason::TooManyConnections,
        BounceReason::RateLimited,
        BounceReason::MailerError,
        BounceReason::SyntaxError,
        BounceReason::Blocked,
        BounceReason::SpamDetected,
        BounceReason::VirusDetected,
        BounceReason::ContentError,
        BounceReason::Policy,
        BounceReason::BadReputation,
        BounceReason::RequirePtr,
        BounceReason::AuthFailure,
        BounceReason::SecurityError,
        BounceReason::Rejected,
        BounceReason::RelayDenied,
        BounceReason::Filtered,
        BounceReason::NotCompliant,
        BounceReason::Undefined,
    ];

    /// Its name (`user_unknown`, `mailbox_full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            BounceReason::UserUnknown => "user_unknown",
            BounceReason::HostUnknown => "host_unknown",
            BounceReason::HasMoved => "has_moved",
            BounceReason::NotAccepted => "not_accepted",
            BounceReason::MailboxFull => "mailbox_full",
            BounceReason::MessageTooBig => "message_too_big",
            BounceReason::ExceedLimit => "exceed_limit",
            BounceReason::Suspended => "suspended",
            BounceReason::Expired => "expired",
            BounceReason::SystemError => "system_error",
            BounceReason::SystemFull => "system_full",
            BounceReason::NetworkError => "network_error",
            BounceReason::TooManyConnections => "too_many_connections",
            BounceReason::RateLimited => "rate_limited",
            BounceReason::MailerError => "mailer_error",
            BounceReason::SyntaxError => "syntax_error",
            BounceReason::Blocked => "blocked",
            BounceReason::SpamDetected => "spam_detected",
            BounceReason::VirusDetected => "virus_detected",
            BounceReason::ContentError => "content_error",
            BounceReason::Policy => "policy",
            BounceReason::BadReputation => "bad_reputation",
            BounceReason::RequirePtr => "require_ptr",
            BounceReason::AuthFailure => "auth_failure",
            BounceReason::SecurityError => "security_error",
            BounceReason::Rejected => "rejected",
            BounceReason::RelayDenied => "relay_denied",
            BounceReason::Filtered => "filtered",
            BounceReason::NotCompliant => "not_compliant",
            BounceReason::Undefined => "undefined",
        }
    }

    /// The reason named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for BounceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery judged: its class and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Hard, soft or blocked.
    pub class: BounceClass,
    /// Why.
    pub reason: BounceReason,
}

/// What is known of one failed delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence<'a> {
    /// The basic reply code (`550`), when known apart from the text.
    pub code: Option<u16>,
    /// The enhanced status code (`5.1.1`) of a DSN's `Status` field.
    pub status: Option<&'a str>,
    /// The reply text or the DSN's `Diagnostic-Code` (`550 5.1.1 user unknown`).
    pub diagnostic: Option<&'a str>,
    /// Whether the reporter gave up for good (a DSN's `Action: failed`); a
    /// failure is permanent when this is set, or a code says so (5xx, 5.x.x).
    pub gave_up: bool,
    /// The SMTP command the reply answered, when known. A refusal of the
    /// session or of the sender says nothing about the address; "user
    /// unknown" in reply to DATA (after RCPT TO was accepted) is the
    /// recipient's filter, not a missing mailbox.
    pub stage: Option<Stage>,
}

/// The rules file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bounce rules: {0}")]
pub struct RulesError(String);

/// The bounce rules: text patterns and enhanced codes, each mapped to a
/// reason, and the reasons of each class.
#[derive(Debug)]
pub struct BounceRules {
    patterns: RegexSet,
    pattern_reason: Vec<BounceReason>,
    pattern_weak: Vec<bool>,
    pattern_sure: Vec<bool>,
    codes: HashMap<String, BounceReason>,
    hard: Vec<BounceReason>,
    blocked: Vec<BounceReason>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    classes: ClassesFile,
    text: Vec<TextRule>,
    codes: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesFile {
    hard: Vec<String>,
    blocked: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextRule {
    reason: String,
    /// A weak rule (generic words) gives way to a specific enhanced code.
    #[serde(default)]
    weak: bool,
    /// A sure rule (a provider's own wording for a missing mailbox) needs no
    /// code or stage to agree.
    #[serde(default)]
    sure: bool,
    patterns: Vec<String>,
}

const BUILTIN: &str = include_str!("../data/bounce-rules.toml");

static BUILTIN_RULES: LazyLock<BounceRules> = LazyLock::new(|| {
    // The built-in file is checked by a unit test; a broken copy cannot ship.
    BounceRules::parse(BUILTIN).unwrap_or_else(|e| panic!("built-in {e}"))
});

impl BounceRules {
    /// The rules shipped with Herald (`data/bounce-rules.toml`), parsed once.
    pub fn builtin() -> &'static BounceRules {
        &BUILTIN_RULES
    }

    /// Rules from the text of a rules file (the format of `data/bounce-rules.toml`).
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError(e.to_string()))?;
        let reason = |name: &str| {
            BounceReason::parse(name).ok_or_else(|| RulesError(format!("unknown reason `{name}`")))
        };
        let mut patterns = Vec::new();
        let mut pattern_reason = Vec::new();
        let mut pattern_weak = Vec::new();
        let mut pattern_sure = Vec::new();
        for rule in &file.text {
            let r = reason(&rule.reason)?;
            for p in &rule.patterns {
                patterns.push(p.clone());
                pattern_reason.push(r);
                pattern_weak.push(rule.weak);
                pattern_sure.push(rule.sure);
            }
        }
        let patterns = RegexSet::new(&patterns).map_err(|e| RulesError(e.to_string()))?;
        let codes = file
            .codes
            .iter()
            .map(|(code, name)| Ok((code.clone(), reason(name)?)))
            .collect::<Result<_, RulesError>>()?;
        let list = |names: &[String]| names.iter().map(|n| reason(n)).collect::<Result<_, _>>();
        Ok(BounceRules {
            patterns,
            pattern_reason,
            pattern_weak,
            pattern_sure,
            codes,
            hard: list(&file.classes.hard)?,
            blocked: list(&file.classes.blocked)?,
        })
    }

    /// The reason the diagnostic text names, by the first matching rule.
    pub fn reason_of_text(&self, text: &str) -> Option<BounceReason> {
        let (strong, weak, _) = self.text_reasons(text);
        strong.or(weak)
    }

    /// The first strong and the first weak rule matching `text`, and whether
    /// the strong one is sure.
    fn text_reasons(&self, text: &str) -> (Option<BounceReason>, Option<BounceReason>, bool) {
        let folded = fold(text);
        let mut weak = None;
        for i in self.patterns.matches(&folded).iter() {
            if self.pattern_weak[i] {
                weak = weak.or(Some(self.pattern_reason[i]));
            } else {
                return (Some(self.pattern_reason[i]), weak, self.pattern_sure[i]);
            }
        }
        (None, weak, false)
    }

    /// The reason an enhanced status code stands for (exact, then `class.subject`).
    pub fn reason_of_code(&self, code: (u8, u16, u16)) -> Option<BounceReason> {
        let (c, s, d) = code;
        self.codes
            .get(&format!("{c}.{s}.{d}"))
            .or_else(|| self.codes.get(&format!("{c}.{s}")))
            .copied()
    }

    /// The class of a reason, for a failure that is permanent or not.
    pub fn class_of(&self, reason: BounceReason, permanent: bool) -> BounceClass {
        if self.blocked.contains(&reason) {
            BounceClass::Blocked
        } else if permanent && self.hard.contains(&reason) {
            BounceClass::Hard
        } else {
            BounceClass::Soft
        }
    }

    /// Judges one failed delivery. Precedence: a strong text rule, then a
    /// specific enhanced code (detail not 0), then a vague code that the
    /// table names (`5.6.0`: content), then a weak text rule, else
    /// `undefined`. "User unknown" in the text needs a
    /// 5.1.x code or a reply to RCPT TO to agree, else it is `filtered`; an
    /// address reason in reply to the session or the sender is `blocked` or
    /// `rejected`. A temporary code (4xx, 4.x.x) is never hard.
    pub fn judge(&self, evidence: &Evidence<'_>) -> Verdict {
        let diagnostic = evidence.diagnostic.unwrap_or("");
        let in_text = find_enhanced_code(diagnostic);
        let in_status = evidence.status.and_then(enhanced_code);
        // A specific code beats a vague one (x.y.0); the Status field beats
        // the text when both are specific.
        let code = match (in_status, in_text) {
            (Some(s), Some(t)) if is_vague(s) && (!is_vague(t) || s.1 == 0 && t.1 != 0) => Some(t),
            (Some(s), _) => Some(s),
            (None, t) => t,
        };
        let basic = evidence.code.or_else(|| find_basic_code(diagnostic));
        let (strong, weak, sure) = self.text_reasons(diagnostic);
        let specific = code
            .filter(|c| !is_vague(*c))
            .and_then(|c| self.reason_of_code(c));
        let mut reason = match (strong, specific) {
            (Some(t), _) => t,
            (None, Some(c)) => c,
            (None, None) => code
                .and_then(|c| self.reason_of_code(c))
                .or(weak)
                .unwrap_or(BounceReason::Undefined),
        };
        // "User unknown" is believed when the evidence agrees: a code of the
        // address subject (5.1.x), the reply known to answer RCPT TO, or a
        // provider's own wording (a `sure` rule). (A reply that merely names
        // the recipient is no proof: measured, it confirms as many filters
        // as missing mailboxes.) Without any, it is as
        // likely the recipient's filter refusing this sender (Japanese
        // carriers answer "550 User unknown" after DATA for filtered
        // senders): `filtered`, never hard.
        if reason == BounceReason::UserUnknown && strong == Some(BounceReason::UserUnknown) {
            let confirmed = sure
                || [in_status, in_text]
                    .into_iter()
                    .flatten()
                    .any(|(c, s, _)| c == 5 && s == 1)
                || evidence.stage == Some(Stage::Recipient);
            if !confirmed {
                reason = BounceReason::Filtered;
            }
        }
        // A refusal of the message itself (after DATA) that says nothing
        // more is the receiver's filter.
        if evidence.stage == Some(Stage::Data)
            && matches!(reason, BounceReason::Undefined | BounceReason::SystemError)
            && strong.is_none()
        {
            reason = BounceReason::Filtered;
        }
        // A refusal of the session or of the sender is about the sending
        // side: never an address reason, and an unexplained one is a block.
        let unexplained = matches!(reason, BounceReason::Undefined | BounceReason::SystemError);
        match evidence.stage {
            Some(Stage::Session) if self.hard.contains(&reason) || unexplained => {
                reason = BounceReason::Blocked;
            }
            Some(Stage::Sender) if self.hard.contains(&reason) => reason = BounceReason::Rejected,
            _ => {}
        }
        let temporary = match (basic, code) {
            (Some(b), _) => b / 100 == 4,
            (None, Some((c, _, _))) => c == 4,
            (None, None) => false,
        };
        let permanent = !temporary
            && (evidence.gave_up
                || basic.is_some_and(|b| b / 100 == 5)
                || code.is_some_and(|(c, _, _)| c == 5));
        Verdict {
            class: self.class_of(reason, permanent),
            reason,
        }
    }
}

/// A code that names a class and a subject but no detail (`5.0.0`, `5.7.0`,
/// `5.2.0`): the text decides.
fn is_vague(code: (u8, u16, u16)) -> bool {
    code.2 == 0
}

/// Lower case, runs of white space folded to one space.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The RFC 3463 enhanced status code at the start of a text (`5.1.1`).
pub fn enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    parse_code(text.split_whitespace().next()?)
}

fn parse_code(word: &str) -> Option<(u8, u16, u16)> {
    let word = word.trim_matches(|c: char| !c.is_ascii_digit());
    let mut parts = word.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() || subject.len() > 3 || detail.len() > 3 {
        return None;
    }
    let (subject, detail) = (subject.parse().ok()?, detail.parse().ok()?);
    matches!(class, 2 | 4 | 5).then_some((class, subject, detail))
}

/// The first enhanced status code anywhere in a text (`550 5.1.1 …`,
/// `550-5.1.1`, `#5.1.1`, `(5.2.2)`).
pub fn find_enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '-' | '#' | '(' | ')' | '<' | '>' | '[' | ']' | ',' | ';' | '"' | '\''
            )
    })
    .find_map(|w| {
        let w = w.trim_end_matches([':', '.']);
        (w.matches('.').count() == 2)
            .then(|| parse_code(w))
            .flatten()
    })
}

/// The first basic reply code (`550`) in a text: a three-digit word starting
/// with 4 or 5 (also as `550-` or `550:`).
pub fn find_basic_code(text: &str) -> Option<u16> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '-' | ':' | '(' | ')' | '[' | ']' | ','))
        .find_map(|w| {
            (w.len() == 3
                && w.bytes().all(|b| b.is_ascii_digit())
                && matches!(w.as_bytes()[0], b'4' | b'5'))
            .then(|| w.parse().ok())
            .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_parse_and_name_known_reasons() {
        let rules = BounceRules::parse(BUILTIN).expect("built-in rules");
        assert!(rules.pattern_reason.len() > 100);
    }

    #[test]
    fn no_rule_matches_everything() {
        let rules = BounceRules::builtin();
        for neutral in ["", " ", "x", "hello world", "250 ok"] {
            assert_eq!(rules.reason_of_text(neutral), None, "{neutral:?}");
        }
    }

    #[test]
    fn a_bad_rules_file_says_what_is_wrong() {
        let e = BounceRules::parse(
            "[classes]\nhard=[\"nope\"]\nblocked=[]\n[codes]\n[[text]]\nreason=\"blocked\"\npatterns=[\"x\"]",
        )
        .expect_err("unknown reason");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = BounceRules::parse(
            "[classes]\nhard=[]\nblocked=[]\n[codes]\n[[text]]\nreason=\"blocked\"\npatterns=[\"(\"]",
        )
        .expect_err("bad pattern");
        assert!(
            e.to_string().contains("regex") || e.to_string().contains("("),
            "{e}"
        );
    }

    fn judge(status: Option<&str>, diagnostic: &str) -> (BounceClass, BounceReason) {
        let v = BounceRules::builtin().judge(&Evidence {
            status,
            diagnostic: Some(diagnostic),
            gave_up: true,
            ..Evidence::default()
        });
        (v.class, v.reason)
    }

    #[test]
    fn the_text_wins_over_a_vague_status() {
        use BounceClass::{Hard, Soft};
        use BounceReason::*;
        assert_eq!(
            judge(
                Some("5.0.0"),
                "550 5.7.1 Service unavailable; client host [1.2.3.4] blocked using zen.spamhaus.org"
            ),
            (BounceClass::Blocked, BounceReason::Blocked)
        );
        assert_eq!(
            judge(Some("5.0.0"), "552 5.2.2 mailbox full"),
            (Soft, MailboxFull)
        );
        assert_eq!(
            judge(Some("5.0.0"), "552 5.2.3 message too large"),
            (Soft, MessageTooBig)
        );
        assert_eq!(
            judge(
                Some("5.0.0"),
                "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table"
            ),
            (Hard, UserUnknown)
        );
        assert_eq!(
            judge(Some("5.0.0"), "550 sorry"),
            (Soft, Undefined),
            "unsure is soft"
        );
        assert_eq!(judge(Some("5.1.1"), "smtp; 550"), (Hard, UserUnknown));
        assert_eq!(
            judge(
                Some("4.7.0"),
                "421 4.7.0 Temporarily deferred due to user complaints"
            ),
            (BounceClass::Blocked, BadReputation)
        );
    }

    #[test]
    fn codes_are_found_where_servers_put_them() {
        assert_eq!(
            find_enhanced_code("550-5.1.1 The email account"),
            Some((5, 1, 1))
        );
        assert_eq!(
            find_enhanced_code("smtp; 550 #5.1.0 Address rejected"),
            Some((5, 1, 0))
        );
        assert_eq!(find_enhanced_code("(5.2.2) full"), Some((5, 2, 2)));
        assert_eq!(find_enhanced_code("from 10.1.1.1 said"), None);
        assert_eq!(find_basic_code("host x said: 550-5.1.1 no"), Some(550));
        assert_eq!(find_basic_code("error 1234"), None);
        assert_eq!(enhanced_code("4.7.0, try later"), Some((4, 7, 0)));
        assert_eq!(enhanced_code("3.1.1 x"), None);
    }
}
