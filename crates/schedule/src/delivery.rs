//! What a delivery attempt's result means for the message (R-SND-6): the SMTP
//! reply classified by its code and RFC 3463 enhanced status code, and the
//! retry schedule for temporary failures (RFC 5321 §4.5.4.1).

use crate::outbox::{BounceClass, Outcome};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The result of one attempt, as a transport reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attempt {
    /// The server answered the transaction with this reply.
    Reply {
        /// The basic code (250, 451, 550, …).
        code: u16,
        /// The reply text (with the enhanced code, if the server sent one).
        text: String,
    },
    /// No reply: connection refused or dropped, TLS failure, DNS failure, timeout.
    Unreachable {
        /// What went wrong.
        reason: String,
    },
}

/// When to retry and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// The first retry's delay, in seconds. Default 1,800 (RFC 5321: at least 30 minutes).
    pub initial_secs: u64,
    /// The longest delay between two attempts, in seconds. Default 14,400 (4 hours).
    pub max_secs: u64,
    /// Give up (soft bounce) once the first attempt is this old, in seconds.
    /// Default 432,000 (5 days; RFC 5321: at least 4 to 5 days).
    pub give_up_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_secs: 1_800,
            max_secs: 14_400,
            give_up_secs: 432_000,
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempts` failed ones: the initial
    /// delay doubled per earlier attempt, capped at the maximum.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 1u64
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let secs = self
            .initial_secs
            .saturating_mul(factor)
            .min(self.max_secs.max(self.initial_secs));
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
    }
}

/// The RFC 3463 enhanced status code at the start of a reply text (`5.1.1`).
pub fn enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.trim_end_matches([',', ';']).parse().ok()?;
    (matches!(class, 2 | 4 | 5) && parts.next().is_none()).then_some((class, subject, detail))
}

const BLOCK_WORDS: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "denylist",
    "reputation",
    "policy",
    "rejected due to",
    "dnsbl",
    "rbl",
    "spamhaus",
    "barracuda",
    "abuse",
];

/// Classes a permanent (5xx) reply: `Blocked` when it refuses the sender or the
/// content (enhanced `5.7.x`, or words such as spam, blocked, reputation),
/// `Hard` when it refuses the address (`5.1.x`, `5.2.1`, and the rest).
pub fn permanent_class(text: &str) -> BounceClass {
    let lower = text.to_ascii_lowercase();
    match enhanced_code(text) {
        Some((5, 1, _)) => BounceClass::Hard,
        Some((5, 7, _)) => BounceClass::Blocked,
        _ if BLOCK_WORDS.iter().any(|w| lower.contains(w)) => BounceClass::Blocked,
        _ => BounceClass::Hard,
    }
}

/// The outcome of an attempt on a message that has had `attempts` earlier
/// attempts, the first at `first_attempt_at`: 2xx delivered; 4xx and no reply
/// deferred by the policy, or a soft bounce past the give-up age; 5xx a hard
/// bounce or blocked.
pub fn outcome(
    attempt: &Attempt,
    attempts: u32,
    first_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
) -> Outcome {
    let (temporary, reply) = match attempt {
        Attempt::Reply { code, text } => {
            let reply = format!("{code} {text}").trim().to_owned();
            match code / 100 {
                2 => return Outcome::Delivered { reply },
                5 => {
                    return Outcome::Bounced {
                        class: permanent_class(text),
                        reply,
                    };
                }
                _ => (true, reply),
            }
        }
        Attempt::Unreachable { reason } => (true, reason.clone()),
    };
    debug_assert!(temporary);
    let first = first_attempt_at.unwrap_or(now);
    let give_up =
        first + Duration::seconds(i64::try_from(policy.give_up_secs).unwrap_or(i64::MAX / 1000));
    let retry_at = now + policy.delay(attempts + 1);
    if retry_at > give_up {
        Outcome::Bounced {
            class: BounceClass::Soft,
            reply,
        }
    } else {
        Outcome::Deferred { retry_at, reply }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn reply(code: u16, text: &str) -> Attempt {
        Attempt::Reply {
            code,
            text: text.into(),
        }
    }

    #[test]
    fn replies_are_classified() {
        let p = RetryPolicy::default();
        let o = |a: &Attempt| outcome(a, 0, None, now(), &p);
        assert!(matches!(
            o(&reply(250, "2.0.0 Ok: queued")),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            o(&reply(451, "4.7.1 greylisted")),
            Outcome::Deferred { .. }
        ));
        assert!(matches!(
            o(&Attempt::Unreachable {
                reason: "connection refused".into()
            }),
            Outcome::Deferred { .. }
        ));
        for (text, class) in [
            (
                "5.1.1 <x@y.z>: Recipient address rejected: User unknown",
                BounceClass::Hard,
            ),
            ("5.2.1 mailbox disabled", BounceClass::Hard),
            (
                "5.7.1 Service unavailable; client host blocked using Spamhaus",
                BounceClass::Blocked,
            ),
            (
                "Message rejected due to poor sender reputation",
                BounceClass::Blocked,
            ),
            ("5.0.0 no such user here", BounceClass::Hard),
            (
                "5.1.1 blocked words in a 5.1.1 are still an address problem",
                BounceClass::Hard,
            ),
        ] {
            match o(&reply(550, text)) {
                Outcome::Bounced { class: c, reply } => {
                    assert_eq!(c, class, "{text}");
                    assert!(reply.starts_with("550 "));
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn enhanced_codes_parse() {
        assert_eq!(enhanced_code("5.1.1 user unknown"), Some((5, 1, 1)));
        assert_eq!(enhanced_code("4.7.0, try later"), Some((4, 7, 0)));
        assert_eq!(enhanced_code("user unknown"), None);
        assert_eq!(enhanced_code("3.1.1 x"), None);
    }

    #[test]
    fn deferrals_back_off_then_give_up_as_a_soft_bounce() {
        let p = RetryPolicy {
            initial_secs: 60,
            max_secs: 600,
            give_up_secs: 3_600,
        };
        assert_eq!(p.delay(1), Duration::seconds(60));
        assert_eq!(p.delay(2), Duration::seconds(120));
        assert_eq!(p.delay(4), Duration::seconds(480));
        assert_eq!(p.delay(5), Duration::seconds(600));
        assert_eq!(p.delay(64), Duration::seconds(600));
        let first = now();
        let late = now() + Duration::seconds(3_300);
        match outcome(&reply(421, "busy"), 9, Some(first), late, &p) {
            Outcome::Bounced {
                class: BounceClass::Soft,
                reply,
            } => assert_eq!(reply, "421 busy"),
            other => panic!("{other:?}"),
        }
        match outcome(&reply(421, "busy"), 0, None, now(), &p) {
            Outcome::Deferred { retry_at, .. } => {
                assert_eq!(retry_at, now() + Duration::seconds(60))
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #[test]
        fn a_retry_never_lands_after_the_give_up_age(attempts in 0u32..100, age in 0i64..1_000_000, initial in 1u64..10_000, max in 1u64..100_000, give_up in 1u64..1_000_000) {
            let p = RetryPolicy { initial_secs: initial, max_secs: max, give_up_secs: give_up };
            let first = now();
            let t = now() + Duration::seconds(age);
            match outcome(&reply(451, "later"), attempts, Some(first), t, &p) {
                Outcome::Deferred { retry_at, .. } => {
                    prop_assert!(retry_at > t);
                    prop_assert!(retry_at <= first + Duration::seconds(give_up as i64));
                }
                Outcome::Bounced { class, .. } => prop_assert_eq!(class, BounceClass::Soft),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
