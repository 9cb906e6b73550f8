//! What a delivery attempt's result means for the message (R-SND-6): the SMTP
//! reply classified by its code and RFC 3463 enhanced status code, and the
//! retry schedule for temporary failures (RFC 5321 §4.5.4.1).

use crate::bounce::{BounceRules, Evidence};
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
        /// The step of the SMTP session the reply answered.
        #[serde(default)]
        stage: Stage,
    },
    /// No reply: connection refused or dropped, TLS failure, DNS failure, timeout.
    Unreachable {
        /// What went wrong.
        reason: String,
    },
}

/// The step of an SMTP session a reply answers. Only replies to RCPT TO and
/// to the message (DATA) speak about the recipient; a refusal of the
/// connection, the greeting, EHLO, STARTTLS, AUTH or MAIL FROM is about the
/// sending side (a misconfigured relay, an unauthenticated client, a refused
/// sender) and never bounces the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Connection, greeting, EHLO, STARTTLS or AUTH.
    Session,
    /// MAIL FROM: the envelope sender.
    Sender,
    /// RCPT TO: the recipient.
    #[default]
    Recipient,
    /// DATA and the message itself.
    Data,
}

impl Stage {
    /// Whether a refusal at this stage is about the recipient.
    pub fn speaks_of_recipient(self) -> bool {
        matches!(self, Stage::Recipient | Stage::Data)
    }
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

    /// When to try again after a temporary failure at `now` of a message with
    /// `attempts` earlier attempts, the first at `first_attempt_at`: after
    /// [`RetryPolicy::delay`], or `at_least` when that is longer (a server's
    /// `Retry-After`); `None` once that is past the give-up age: give up.
    pub fn retry_at(
        &self,
        attempts: u32,
        first_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        at_least: Duration,
    ) -> Option<DateTime<Utc>> {
        let give_up = first_attempt_at.unwrap_or(now)
            + Duration::seconds(i64::try_from(self.give_up_secs).unwrap_or(i64::MAX / 1000));
        let retry_at = now + self.delay(attempts + 1).max(at_least);
        (retry_at <= give_up).then_some(retry_at)
    }
}

/// The outcome of an attempt on a message that has had `attempts` earlier
/// attempts, the first at `first_attempt_at`: 2xx delivered; a 5xx to RCPT TO
/// or DATA bounced, classed by the built-in [`BounceRules`]; 4xx and no reply
/// deferred by the policy, or a soft bounce past the give-up age. A refusal
/// of the session or of the sender (any stage before RCPT TO) is about
/// Herald's side: deferred by the policy like a temporary failure, and past
/// the give-up age failed, never bounced, so no recipient is blocklisted.
pub fn outcome(
    attempt: &Attempt,
    attempts: u32,
    first_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
) -> Outcome {
    let (recipient_level, reply) = match attempt {
        Attempt::Reply { code, text, stage } => {
            let reply = format!("{code} {text}").trim().to_owned();
            match (code / 100, stage.speaks_of_recipient()) {
                (2, _) => return Outcome::Delivered { reply },
                (5, true) => {
                    let verdict = BounceRules::builtin().judge(&Evidence {
                        code: Some(*code),
                        diagnostic: Some(text),
                        stage: Some(*stage),
                        ..Evidence::default()
                    });
                    return Outcome::Bounced {
                        class: verdict.class,
                        reason: verdict.reason,
                        reply,
                    };
                }
                (_, recipient_level) => (recipient_level, reply),
            }
        }
        Attempt::Unreachable { reason } => (true, reason.clone()),
    };
    if let Some(retry_at) = policy.retry_at(attempts, first_attempt_at, now, Duration::zero()) {
        Outcome::Deferred { retry_at, reply }
    } else if recipient_level {
        let verdict = BounceRules::builtin().judge(&Evidence {
            diagnostic: Some(&reply),
            gave_up: true,
            ..Evidence::default()
        });
        // Retries ran out: soft whatever the last reply said, for the reason it gave.
        let reason = match verdict.reason {
            crate::BounceReason::Undefined => crate::BounceReason::Expired,
            r => r,
        };
        Outcome::Bounced {
            class: match verdict.class {
                BounceClass::Blocked => BounceClass::Blocked,
                _ => BounceClass::Soft,
            },
            reason,
            reply,
        }
    } else {
        Outcome::Failed {
            reason: format!(
                "the receiving side refused the session or the sender until the give-up age: {reply}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BounceReason;
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
            stage: Stage::Recipient,
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
        for (text, class, why) in [
            (
                "5.1.1 <x@y.z>: Recipient address rejected: User unknown",
                BounceClass::Hard,
                BounceReason::UserUnknown,
            ),
            (
                "5.7.1 Service unavailable; client host blocked using Spamhaus",
                BounceClass::Blocked,
                BounceReason::Blocked,
            ),
            (
                "Message rejected due to poor sender reputation",
                BounceClass::Blocked,
                BounceReason::BadReputation,
            ),
            (
                "5.0.0 no such user here",
                BounceClass::Hard,
                BounceReason::UserUnknown,
            ),
            (
                "5.2.2 mailbox full",
                BounceClass::Soft,
                BounceReason::MailboxFull,
            ),
            ("5.0.0 sorry", BounceClass::Soft, BounceReason::Undefined),
        ] {
            match o(&reply(550, text)) {
                Outcome::Bounced {
                    class: c,
                    reason,
                    reply,
                } => {
                    assert_eq!((c, reason), (class, why), "{text}");
                    assert!(reply.starts_with("550 "));
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn user_unknown_after_data_is_the_recipient_s_filter() {
        let p = RetryPolicy::default();
        let at = |stage| Attempt::Reply {
            code: 550,
            text: "User unknown".into(),
            stage,
        };
        let class = |a: &Attempt| match outcome(a, 0, None, now(), &p) {
            Outcome::Bounced { class, reason, .. } => (class, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            class(&at(Stage::Recipient)),
            (BounceClass::Hard, BounceReason::UserUnknown)
        );
        assert_eq!(
            class(&at(Stage::Data)),
            (BounceClass::Blocked, BounceReason::Filtered)
        );
    }

    #[test]
    fn a_refused_session_or_sender_never_bounces_the_recipient() {
        let p = RetryPolicy::default();
        for (code, text, stage) in [
            (530, "5.7.0 Authentication required", Stage::Session),
            (
                554,
                "5.7.1 Client host rejected: Access denied",
                Stage::Session,
            ),
            (
                550,
                "5.7.1 Sender address rejected: not owned by user",
                Stage::Sender,
            ),
            (553, "5.1.1 User unknown", Stage::Sender),
        ] {
            let a = Attempt::Reply {
                code,
                text: text.into(),
                stage,
            };
            assert!(
                matches!(outcome(&a, 0, None, now(), &p), Outcome::Deferred { .. }),
                "{text}: deferred, to be retried once the sending side is fixed"
            );
            let late = now() + Duration::seconds(p.give_up_secs as i64);
            match outcome(&a, 9, Some(now()), late, &p) {
                Outcome::Failed { reason } => assert!(reason.contains(text), "{reason}"),
                other => panic!("{text}: past the give-up age it fails, never bounces: {other:?}"),
            }
        }
    }

    #[test]
    fn enhanced_codes_parse() {
        use crate::bounce::enhanced_code;
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
                ..
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
