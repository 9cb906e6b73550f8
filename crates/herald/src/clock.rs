//! The time, passed in: the system clock in production, a hand-moved clock in tests.

use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// The system's clock moved by a fixed offset: a process started with it lives
/// that far in the future (or past). For tests of separate processes and for
/// drills ("what does the worker do in ten minutes?"), never for production.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub chrono::Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

/// The clock a binary runs on: the system's, or [`OffsetClock`] when the
/// environment variable `HERALD_CLOCK_OFFSET_SECS` holds a number of seconds.
pub fn from_env() -> Result<std::sync::Arc<dyn Clock>, String> {
    match std::env::var("HERALD_CLOCK_OFFSET_SECS") {
        Ok(v) => {
            let secs: i64 = v.trim().parse().map_err(|_| {
                format!("HERALD_CLOCK_OFFSET_SECS: `{v}` is not a whole number of seconds")
            })?;
            Ok(std::sync::Arc::new(OffsetClock(chrono::Duration::seconds(
                secs,
            ))))
        }
        Err(_) => Ok(std::sync::Arc::new(SystemClock)),
    }
}
