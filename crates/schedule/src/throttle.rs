//! Throttles (R-SND-3): rates written as `"6000/15m"` and enforced with governor.
//!
//! A rate `N/P` lets one message through every `P/N` on average, with a burst
//! of `b` (default 1: a smooth rate) when written `N/P,burst=b`. Units: `s`,
//! `m`, `h`, `d`; a bare number of the unit means one (`600/m`).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed, keyed::DefaultKeyedStateStore};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// A rate such as `6000/15m` (6,000 per 15 minutes), with an optional burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate {
    /// Messages per period.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// How many may go at once when the bucket is full.
    pub burst: NonZeroU32,
}

/// A rate string that does not parse; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "throttle `{input}`: {problem}; write COUNT/PERIOD such as `6000/15m`, optionally `,burst=N`"
)]
pub struct RateError {
    /// The rejected input.
    pub input: String,
    /// What is wrong.
    pub problem: String,
}

impl std::str::FromStr for Rate {
    type Err = RateError;
    fn from_str(input: &str) -> Result<Self, RateError> {
        let fail = |problem: &str| RateError {
            input: input.to_owned(),
            problem: problem.to_owned(),
        };
        let (rate, burst) = match input.split_once(',') {
            Some((r, b)) => {
                let b = b
                    .trim()
                    .strip_prefix("burst=")
                    .ok_or_else(|| fail("after `,` only `burst=N` is allowed"))?;
                let b: u32 = b
                    .parse()
                    .map_err(|_| fail("burst must be a whole number"))?;
                (
                    r,
                    Some(NonZeroU32::new(b).ok_or_else(|| fail("burst must be at least 1"))?),
                )
            }
            None => (input, None),
        };
        let (count, period) = rate.trim().split_once('/').ok_or_else(|| fail("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| fail("the count must be a whole number"))?;
        let count = NonZeroU32::new(count).ok_or_else(|| fail("the count must be at least 1"))?;
        let period = period.trim();
        let unit_at = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| fail("the period needs a unit (s, m, h or d)"))?;
        let (n, unit) = period.split_at(unit_at);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse()
                .map_err(|_| fail("the period must be a whole number"))?
        };
        let secs =
            unit_seconds(unit).ok_or_else(|| fail("the period's unit must be s, m, h or d"))?;
        if n == 0 {
            return Err(fail("the period must be longer than zero"));
        }
        let period = Duration::from_secs(n.saturating_mul(secs));
        let burst = burst.unwrap_or(NonZeroU32::MIN);
        if burst > count {
            return Err(fail("burst cannot exceed the count"));
        }
        Ok(Rate {
            count,
            period,
            burst,
        })
    }
}

/// Seconds in one of a written duration's units: `s`, `m`, `h`, `d` (the
/// units of rates here and of durations in Herald's other settings).
pub fn unit_seconds(unit: &str) -> Option<u64> {
    match unit {
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    }
}

impl TryFrom<String> for Rate {
    type Error = RateError;
    fn try_from(s: String) -> Result<Self, RateError> {
        s.parse()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let (n, unit) = if secs.is_multiple_of(86_400) {
            (secs / 86_400, "d")
        } else if secs.is_multiple_of(3600) {
            (secs / 3600, "h")
        } else if secs.is_multiple_of(60) {
            (secs / 60, "m")
        } else {
            (secs, "s")
        };
        write!(f, "{}/{n}{unit}", self.count)?;
        if self.burst.get() > 1 {
            write!(f, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

impl From<Rate> for String {
    fn from(r: Rate) -> Self {
        r.to_string()
    }
}

impl Rate {
    /// The governor quota: one cell every `period / count`, `burst` at most.
    pub fn quota(&self) -> Quota {
        let interval = self.period / self.count.get();
        Quota::with_period(interval.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(self.burst)
    }
}

/// A rate as the generic cell rate algorithm (GCRA) applies it, in
/// microseconds: the shared throttle's arithmetic. A key's state is one number,
/// its theoretical arrival time (TAT); a message conforms at `now` when
/// `max(TAT, now) - now <= tolerance`, and then moves the TAT on by `interval`.
/// Over any window of length `W`, at most `W / interval + burst` messages
/// conform: the rate plus the burst, whatever the number of workers asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gcra {
    /// Microseconds between messages at the sustained rate (at least 1).
    pub interval: i64,
    /// How far ahead of now the TAT may run: `(burst - 1) × interval`.
    pub tolerance: i64,
}

impl Gcra {
    /// The GCRA of `interval` microseconds between messages and `burst`.
    pub fn new(interval: i64, burst: i64) -> Self {
        let interval = interval.max(1);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
        }
    }

    /// One message at `now` on a key whose TAT is `tat`: the new TAT when it
    /// may go, `None` when it may not yet.
    pub fn conform(&self, tat: i64, now: i64) -> Option<i64> {
        let start = tat.max(now);
        (start - now <= self.tolerance).then(|| start.saturating_add(self.interval))
    }

    /// The earliest time a key whose TAT is `tat` lets a message go.
    pub fn ready_at(&self, tat: i64) -> i64 {
        tat - self.tolerance
    }

    /// The same rate divided by `factor` (a site told to slow down).
    pub fn slowed(&self, factor: i64) -> Gcra {
        let factor = factor.max(1);
        Gcra {
            interval: self.interval.saturating_mul(factor),
            tolerance: self.tolerance.saturating_mul(factor),
        }
    }
}

impl Rate {
    /// This rate as a [`Gcra`] (microseconds).
    pub fn gcra(&self) -> Gcra {
        let interval = self.period.as_micros() / u128::from(self.count.get());
        Gcra::new(
            i64::try_from(interval).unwrap_or(i64::MAX),
            i64::from(self.burst.get()),
        )
    }
}

/// Throttle settings: per account (mass mail), global (all mail), SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// Each account's mass-mail rate. Default `6000/15m`.
    pub per_account: Option<Rate>,
    /// The whole installation's rate, all mail. Default none.
    pub global: Option<Rate>,
    /// The whole installation's rate of texts to the SMS gateway, apart from
    /// mail (texts never count against the mail rates). Default
    /// `10/1s,burst=10`.
    #[serde(default = "default_sms_rate")]
    pub sms: Option<Rate>,
}

fn default_sms_rate() -> Option<Rate> {
    Some(Rate {
        count: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        period: Duration::from_secs(1),
        burst: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
    })
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            per_account: Some(Rate {
                count: NonZeroU32::new(6000).unwrap_or(NonZeroU32::MIN),
                period: Duration::from_secs(900),
                burst: NonZeroU32::MIN,
            }),
            global: None,
            sms: default_sms_rate(),
        }
    }
}

/// Which lane a message travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Individual emails: never held by an account's newsletter rate.
    Individual,
    /// Mass emails: throttled per account.
    Mass,
}

type KeyedLimiter<C> =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type DirectLimiter<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The live throttle, generic over governor's clock so tests can drive time.
pub struct Throttle<C: Clock = DefaultClock> {
    per_account: Option<KeyedLimiter<C>>,
    global: Option<DirectLimiter<C>>,
}

impl Throttle<DefaultClock> {
    /// A throttle on the monotonic system clock.
    pub fn new(config: &ThrottleConfig) -> Self {
        Self::with_clock(config, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> Throttle<C> {
    /// A throttle on `clock`.
    pub fn with_clock(config: &ThrottleConfig, clock: &C) -> Self {
        Throttle {
            per_account: config
                .per_account
                .map(|r| RateLimiter::dashmap_with_clock(r.quota(), clock.clone())),
            global: config
                .global
                .map(|r| RateLimiter::direct_with_clock(r.quota(), clock.clone())),
        }
    }

    /// Whether one message of `account` in `lane` may go now. `Err(at)` gives
    /// the earliest time it may.
    pub fn check(&self, account: u64, lane: Lane) -> Result<(), C::Instant> {
        if lane == Lane::Mass
            && let Some(l) = &self.per_account
        {
            l.check_key(&account).map_err(|n| n.earliest_possible())?;
        }
        if let Some(g) = &self.global {
            g.check().map_err(|n| n.earliest_possible())?;
        }
        Ok(())
    }
}

/// Waiting on the throttle in async code (system clock).
impl Throttle<DefaultClock> {
    /// Waits until one message of `account` in `lane` may go.
    pub async fn until_ready(&self, account: u64, lane: Lane) {
        if lane == Lane::Mass
            && let Some(l) = &self.per_account
        {
            l.until_key_ready(&account).await;
        }
        if let Some(g) = &self.global {
            g.until_ready().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn parses_rates() {
        let r: Rate = "6000/15m".parse().expect("parses");
        assert_eq!(
            (r.count.get(), r.period, r.burst.get()),
            (6000, Duration::from_secs(900), 1)
        );
        assert_eq!(r.to_string(), "6000/15m");
        let r: Rate = "600/m,burst=10".parse().expect("parses");
        assert_eq!(
            (r.count.get(), r.period, r.burst.get()),
            (600, Duration::from_secs(60), 10)
        );
        assert_eq!(r.to_string(), "600/1m,burst=10");
        for (bad, needle) in [
            ("6000", "no `/`"),
            ("0/1m", "at least 1"),
            ("5/10", "unit"),
            ("5/10y", "unit"),
            ("x/1m", "whole number"),
            ("5/1m,burst=9", "exceed"),
            ("5/0s", "longer than zero"),
        ] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
            assert!(
                err.to_string().contains("6000/15m"),
                "the error shows the form"
            );
        }
    }

    #[test]
    fn mass_mail_is_throttled_per_account_and_individual_mail_is_not() {
        let clock = FakeRelativeClock::default();
        let config = ThrottleConfig {
            per_account: Some("2/1s".parse().expect("rate")),
            global: None,
            sms: None,
        };
        let t = Throttle::with_clock(&config, &clock);
        assert!(t.check(1, Lane::Mass).is_ok());
        assert!(t.check(1, Lane::Mass).is_err(), "one per 500 ms, burst 1");
        assert!(
            t.check(2, Lane::Mass).is_ok(),
            "another account has its own bucket"
        );
        for _ in 0..100 {
            assert!(
                t.check(1, Lane::Individual).is_ok(),
                "individual mail never waits behind a newsletter"
            );
        }
        clock.advance(Duration::from_millis(500));
        assert!(t.check(1, Lane::Mass).is_ok());
    }

    /// The shared throttle's GCRA and governor's in-process limiter agree on
    /// every decision for the same rate and the same arrival times.
    #[test]
    fn gcra_decides_as_governor_does() {
        use proptest::prelude::*;
        proptest!(|(count in 1u32..50, period_ms in 1u64..5_000, burst_pick in 0u32..50,
                    gaps in proptest::collection::vec(0u64..400, 1..200))| {
            let burst = 1 + burst_pick % count;
            let rate = Rate {
                count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN),
                period: Duration::from_millis(period_ms),
                burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            };
            let clock = FakeRelativeClock::default();
            let governor = Throttle::with_clock(&ThrottleConfig { per_account: None, global: Some(rate), sms: None }, &clock);
            let gcra = rate.gcra();
            let (mut tat, mut now) = (0i64, 1_000_000i64);
            for gap in gaps {
                clock.advance(Duration::from_millis(gap));
                now += i64::try_from(gap).unwrap_or(0) * 1000;
                let ours = gcra.conform(tat, now);
                if let Some(t) = ours { tat = t; }
                prop_assert_eq!(ours.is_some(), governor.check(1, Lane::Individual).is_ok());
            }
        });
    }

    /// Over any window, at most rate × window + burst conform.
    #[test]
    fn gcra_never_lets_more_than_the_rate_and_the_burst_through() {
        let gcra = Gcra::new(100_000, 5); // 10 a second, burst 5
        let mut tat = 0;
        let mut passed = Vec::new();
        for now in (0..10_000_000).step_by(7_000) {
            while let Some(t) = gcra.conform(tat, now) {
                tat = t;
                passed.push(now);
            }
        }
        for (i, start) in passed.iter().enumerate() {
            for window in [1_000_000, 3_000_000] {
                let n = passed[i..]
                    .iter()
                    .take_while(|t| **t < start + window)
                    .count();
                assert!(n as i64 <= window / 100_000 + 5, "{n} in {window} µs");
            }
        }
        assert!((100..=106).contains(&passed.len()), "{}", passed.len());
        assert_eq!(gcra.slowed(4).interval, 400_000);
    }

    #[test]
    fn the_global_rate_holds_all_lanes() {
        let clock = FakeRelativeClock::default();
        let config = ThrottleConfig {
            per_account: None,
            global: Some("10/1s,burst=3".parse().expect("rate")),
            sms: None,
        };
        let t = Throttle::with_clock(&config, &clock);
        let mut passed = 0;
        for i in 0..1000u32 {
            if i % 10 == 0 {
                clock.advance(Duration::from_millis(10));
            }
            if t.check(
                u64::from(i % 7),
                if i % 2 == 0 {
                    Lane::Mass
                } else {
                    Lane::Individual
                },
            )
            .is_ok()
            {
                passed += 1;
            }
        }
        // 1 s of fake time at 10/s, plus the burst of 3.
        assert!((10..=13).contains(&passed), "{passed}");
    }
}
