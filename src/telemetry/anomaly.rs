//! The seed's "resource monitoring for anomaly detection": bursts of
//! access refusals, rate-limit hits or integrity errors, and free space
//! on the data disk falling faster than a configured rate, turn the
//! `anomalies` part of health degraded with the reason.
//!
//! Events are kept as their times (a bounded queue per signal), so a
//! burst is counted over exactly the configured window whenever health is
//! asked; free space is sampled at each health probe and metrics report.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::Clock;

use super::MetricsConfig;
use crate::health::{HealthStatus, PartHealth};

/// What is watched for bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A user refused another user's data (audited refusals).
    Refusal,
    /// A request over its rate limit.
    RateLimited,
    /// Data that failed its authentication or checksum, or did not decode.
    Integrity,
}

/// The most event times kept per signal: more than any threshold needs.
const KEEP: usize = 4096;
/// How far back free-space samples go.
const SPACE_HISTORY: Duration = Duration::from_secs(3600);
/// The shortest span a fall of free space is judged over.
const MIN_SPAN: Duration = Duration::from_secs(600);

/// Event times and free-space samples, in microseconds of the store's
/// clock (so a test that moves its clock moves the windows too).
pub(crate) struct Anomalies {
    clock: Clock,
    events: Mutex<[VecDeque<i64>; 3]>,
    space: Mutex<VecDeque<(i64, u64)>>,
}

/// `later - earlier` as a duration (zero if the clock went back).
fn since(later: i64, earlier: i64) -> Duration {
    Duration::from_micros(u64::try_from(later.saturating_sub(earlier)).unwrap_or(0))
}

fn slot(s: Signal) -> usize {
    match s {
        Signal::Refusal => 0,
        Signal::RateLimited => 1,
        Signal::Integrity => 2,
    }
}

impl Anomalies {
    pub(crate) fn new(clock: Clock) -> Anomalies {
        Anomalies {
            clock,
            events: Mutex::default(),
            space: Mutex::default(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().as_micros()
    }

    pub(crate) fn note(&self, signal: Signal) {
        let now = self.now();
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let q = &mut events[slot(signal)];
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(now);
    }

    /// Records the free bytes on the data disk now.
    pub(crate) fn note_space(&self, available: u64) {
        let now = self.now();
        let mut space = self.space.lock().unwrap_or_else(|p| p.into_inner());
        while space
            .front()
            .is_some_and(|(t, _)| since(now, *t) > SPACE_HISTORY)
        {
            space.pop_front();
        }
        if space.len() == KEEP {
            space.pop_front();
        }
        space.push_back((now, available));
    }

    fn count_within(&self, signal: Signal, window: Duration) -> usize {
        let now = self.now();
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events[slot(signal)]
            .iter()
            .rev()
            .take_while(|t| since(now, **t) <= window)
            .count()
    }

    /// Bytes per hour the free space fell since the oldest sample of the
    /// last hour, if it fell; judged only over at least [`MIN_SPAN`] (a
    /// backup or a burst of puts is not a trend).
    fn shrink_per_hour(&self) -> Option<(u64, Duration)> {
        let space = self.space.lock().unwrap_or_else(|p| p.into_inner());
        let (t0, first) = *space.front()?;
        let (t1, last) = *space.back()?;
        let span = since(t1, t0);
        if span < MIN_SPAN || last >= first {
            return None;
        }
        let per_hour = (first - last) as f64 * 3600.0 / span.as_secs_f64();
        Some((per_hour as u64, span))
    }

    /// The `anomalies` part of health.
    pub(crate) fn health(&self, config: &MetricsConfig) -> PartHealth {
        let window = config.anomaly_window;
        let mut reasons = Vec::new();
        let checks = [
            (Signal::Refusal, config.refusal_burst, "access refusals"),
            (
                Signal::RateLimited,
                config.rate_limit_burst,
                "rate-limit hits",
            ),
            (
                Signal::Integrity,
                config.integrity_burst,
                "integrity errors",
            ),
        ];
        for (signal, limit, what) in checks {
            let n = self.count_within(signal, window);
            if n > limit {
                reasons.push(format!(
                    "{n} {what} in the last {} s (more than {limit})",
                    window.as_secs()
                ));
            }
        }
        if let (Some(limit), Some((rate, span))) =
            (config.growth_bytes_per_hour, self.shrink_per_hour())
            && rate > limit
        {
            reasons.push(format!(
                "free space on the data disk falling at {} MiB/h over the last {} s (more than {} MiB/h)",
                rate >> 20,
                span.as_secs(),
                limit >> 20
            ));
        }
        if reasons.is_empty() {
            PartHealth::new(
                "anomalies",
                HealthStatus::Healthy,
                format!(
                    "no burst of refusals, rate-limit hits or integrity errors in the last {} s",
                    window.as_secs()
                ),
            )
        } else {
            PartHealth::new("anomalies", HealthStatus::Degraded, reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_degrades_and_names_the_reason() {
        let clock = crate::ManualClock::new(crate::Timestamp::from_micros(1_000_000_000));
        let a = Anomalies::new(Clock::Manual(clock.clone()));
        let config = MetricsConfig::default();
        assert_eq!(a.health(&config).status, HealthStatus::Healthy);
        for _ in 0..config.refusal_burst {
            a.note(Signal::Refusal);
        }
        assert_eq!(
            a.health(&config).status,
            HealthStatus::Healthy,
            "at the limit"
        );
        a.note(Signal::Refusal);
        let h = a.health(&config);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.detail.contains("access refusals"), "{}", h.detail);
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            a.health(&config).status,
            HealthStatus::Healthy,
            "outside the window"
        );
    }

    #[test]
    fn free_space_falling_fast_degrades() {
        let clock = crate::ManualClock::new(crate::Timestamp::from_micros(1_000_000_000));
        let a = Anomalies::new(Clock::Manual(clock.clone()));
        a.note_space(10 << 30);
        clock.advance(Duration::from_secs(600));
        a.note_space(9 << 30);
        // 1 GiB in 10 minutes: 6 GiB/h.
        let config = MetricsConfig::default();
        let h = a.health(&config);
        assert_eq!(h.status, HealthStatus::Degraded, "{}", h.detail);
        assert!(h.detail.contains("6144 MiB/h"), "{}", h.detail);
        let lax = MetricsConfig::default().growth_bytes_per_hour(Some(8 << 30));
        assert_eq!(a.health(&lax).status, HealthStatus::Healthy);
    }
}
