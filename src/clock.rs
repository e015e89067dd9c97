//! The one clock of a store: every time it records (created, updated,
//! last active, expiry and retention deadlines, audit times, cache
//! deadlines) is read from it.
//!
//! Times are [`Timestamp`]s (wall-clock microseconds, so that a deadline
//! written to disk still means the same instant after a restart). Expiry,
//! retention and cache TTLs must be testable by moving time by hours or
//! days without sleeping, so the clock is injected through
//! [`Config::clock`](crate::Config::clock): [`Clock::System`] in
//! production, a [`ManualClock`] that only moves when told to in tests.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use bharatvoice_store::{Clock, ManualClock, Timestamp};
//! let manual = ManualClock::new(Timestamp::from_micros(1_000_000));
//! let clock = Clock::from(manual.clone());
//! manual.advance(Duration::from_secs(90));
//! assert_eq!(clock.now(), Timestamp::from_micros(91_000_000));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::types::Timestamp;

/// Where a store reads the current time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when its [`ManualClock`] is moved.
    Manual(ManualClock),
}

impl Clock {
    /// The current time of this clock.
    #[inline]
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(m) => m.now(),
        }
    }
}

impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Clock::System, Clock::System) => true,
            (Clock::Manual(a), Clock::Manual(b)) => Arc::ptr_eq(&a.0, &b.0),
            _ => false,
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(m: ManualClock) -> Self {
        Clock::Manual(m)
    }
}

/// A clock for tests: it starts where it is told and moves only through
/// [`advance`](ManualClock::advance) and [`set`](ManualClock::set). Clones
/// share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.as_micros())))
    }

    /// The time it shows.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::Acquire))
    }

    /// Moves the clock forward (saturating).
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(us))
            });
    }

    /// Sets the clock to `t` (it may go back: tests of clock skew).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_micros(), Ordering::Release);
    }
}

/// Time left from `now` until `deadline`; `None` once it has passed.
pub(crate) fn remaining(deadline: Timestamp, now: Timestamp) -> Option<Duration> {
    let us = deadline.as_micros().checked_sub(now.as_micros())?;
    (us > 0).then(|| Duration::from_micros(us.unsigned_abs()))
}
