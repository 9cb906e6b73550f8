//! Sending rules (R-SND-1, R-SND-2, R-SND-3) as pure functions of the request
//! and the current time, which the caller passes in.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The limits a send must respect. Every number is configurable; the defaults
/// are the user guide's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendingRules {
    /// How far ahead a send may be scheduled, in days. Default 90.
    pub max_days_ahead: u32,
    /// Sends to more than this many recipients must be scheduled. Default 100.
    pub mass_threshold: usize,
    /// How far ahead such a send must be scheduled, in minutes. Default 10.
    pub mass_min_lead_minutes: u32,
    /// The most recipients in one batch of the outbox. Default 5,000.
    pub batch_size: usize,
}

impl Default for SendingRules {
    fn default() -> Self {
        SendingRules {
            max_days_ahead: 90,
            mass_threshold: 100,
            mass_min_lead_minutes: 10,
            batch_size: 5_000,
        }
    }
}

/// When a send should go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// As soon as possible.
    Now,
    /// At this time.
    At(DateTime<Utc>),
}

/// A send refused by a rule; the message names the rule and its limit.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// No recipients at all.
    #[error("rule `recipients`: a send needs at least one recipient")]
    NoRecipients,
    /// Scheduled in the past.
    #[error("rule `scheduled_at`: {at} is in the past (now is {now})")]
    InThePast {
        /// Requested time.
        at: DateTime<Utc>,
        /// The time of the check.
        now: DateTime<Utc>,
    },
    /// Scheduled too far ahead.
    #[error(
        "rule `max_days_ahead`: a send may be scheduled at most {limit_days} days ahead; {at} is later than {latest}"
    )]
    TooFarAhead {
        /// The configured limit.
        limit_days: u32,
        /// Requested time.
        at: DateTime<Utc>,
        /// The latest allowed time.
        latest: DateTime<Utc>,
    },
    /// A mass send asked for "now".
    #[error(
        "rule `mass_threshold`: a send to more than {threshold} recipients ({recipients}) must be scheduled, at least {min_lead_minutes} minutes ahead"
    )]
    MassMustBeScheduled {
        /// The configured threshold.
        threshold: usize,
        /// Recipients of this send.
        recipients: usize,
        /// The configured lead time.
        min_lead_minutes: u32,
    },
    /// A mass send scheduled too soon.
    #[error(
        "rule `mass_min_lead_minutes`: a send to more than {threshold} recipients must be scheduled at least {min_lead_minutes} minutes ahead; {at} is earlier than {earliest}"
    )]
    MassTooSoon {
        /// The configured threshold.
        threshold: usize,
        /// The configured lead time.
        min_lead_minutes: u32,
        /// Requested time.
        at: DateTime<Utc>,
        /// The earliest allowed time.
        earliest: DateTime<Utc>,
    },
}

impl SendingRules {
    /// Checks a send of `recipients` recipients for `when`, at `now`; returns
    /// the time it is due.
    pub fn check(
        &self,
        now: DateTime<Utc>,
        recipients: usize,
        when: When,
    ) -> Result<DateTime<Utc>, RuleViolation> {
        if recipients == 0 {
            return Err(RuleViolation::NoRecipients);
        }
        let mass = recipients > self.mass_threshold;
        let at = match when {
            When::Now if mass => {
                return Err(RuleViolation::MassMustBeScheduled {
                    threshold: self.mass_threshold,
                    recipients,
                    min_lead_minutes: self.mass_min_lead_minutes,
                });
            }
            When::Now => return Ok(now),
            When::At(at) => at,
        };
        if at < now {
            return Err(RuleViolation::InThePast { at, now });
        }
        let latest = now + Duration::days(i64::from(self.max_days_ahead));
        if at > latest {
            return Err(RuleViolation::TooFarAhead {
                limit_days: self.max_days_ahead,
                at,
                latest,
            });
        }
        let earliest = now + Duration::minutes(i64::from(self.mass_min_lead_minutes));
        if mass && at < earliest {
            return Err(RuleViolation::MassTooSoon {
                threshold: self.mass_threshold,
                min_lead_minutes: self.mass_min_lead_minutes,
                at,
                earliest,
            });
        }
        Ok(at)
    }

    /// How many batches `recipients` recipients make.
    pub fn batches(&self, recipients: usize) -> usize {
        recipients.div_ceil(self.batch_size.max(1))
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

    #[test]
    fn the_guide_s_rules_hold_by_default() {
        let r = SendingRules::default();
        assert_eq!(r.check(now(), 100, When::Now), Ok(now()));
        let err = r.check(now(), 101, When::Now).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("rule `mass_threshold`: a send to more than 100 recipients (101)"),
            "{err}"
        );
        let in_91_days = now() + Duration::days(91);
        let err = r.check(now(), 1, When::At(in_91_days)).unwrap_err();
        assert!(err.to_string().contains("at most 90 days ahead"), "{err}");
        assert_eq!(
            r.check(now(), 1, When::At(now() + Duration::days(90))),
            Ok(now() + Duration::days(90))
        );
        let soon = now() + Duration::minutes(9);
        assert!(matches!(
            r.check(now(), 101, When::At(soon)),
            Err(RuleViolation::MassTooSoon { .. })
        ));
        assert_eq!(
            r.check(now(), 101, When::At(now() + Duration::minutes(10))),
            Ok(now() + Duration::minutes(10))
        );
        assert!(matches!(
            r.check(now(), 1, When::At(now() - Duration::seconds(1))),
            Err(RuleViolation::InThePast { .. })
        ));
        assert_eq!(
            r.check(now(), 0, When::Now),
            Err(RuleViolation::NoRecipients)
        );
        assert_eq!(r.batches(5_000), 1);
        assert_eq!(r.batches(5_001), 2);
    }

    proptest! {
        #[test]
        fn accepted_sends_respect_every_limit(
            days in 0u32..400, threshold in 1usize..1000, lead in 0u32..120,
            recipients in 1usize..3000, offset_min in -100i64..(400 * 24 * 60), now_flag: bool,
        ) {
            let r = SendingRules { max_days_ahead: days, mass_threshold: threshold, mass_min_lead_minutes: lead, batch_size: 5000 };
            let when = if now_flag { When::Now } else { When::At(now() + Duration::minutes(offset_min)) };
            match r.check(now(), recipients, when) {
                Ok(at) => {
                    prop_assert!(at >= now());
                    prop_assert!(at <= now() + Duration::days(i64::from(days)));
                    if recipients > threshold {
                        prop_assert!(!now_flag);
                        prop_assert!(at >= now() + Duration::minutes(i64::from(lead)));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.starts_with("rule `"), "{}", text);
                }
            }
        }

        #[test]
        fn batches_cover_all_recipients(n in 0usize..100_000, size in 1usize..10_000) {
            let r = SendingRules { batch_size: size, ..SendingRules::default() };
            let b = r.batches(n);
            prop_assert!(b * size >= n);
            prop_assert!(b == 0 || (b - 1) * size < n);
        }
    }
}
