//! A latency histogram that records without a lock: log-linear buckets
//! (four per power of two, so a quantile is within 19 % of the truth) of
//! nanoseconds, counted with atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: usize = 4;
/// Powers of two covered: 0-3 ns exactly, then 4 ns to 2^42 ns (about 73
/// minutes); longer times land in the last bucket.
const POWERS: usize = 41;
pub(crate) const BUCKETS: usize = SUB * POWERS;

/// Counts of recorded durations by bucket, and their sum.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// The bucket of a duration in nanoseconds.
fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let power = 63 - ns.leading_zeros() as usize;
    // The two bits below the leading one pick the sub-bucket.
    let sub = ((ns >> (power - 2)) & 0b11) as usize;
    (SUB + (power - 2) * SUB + sub).min(BUCKETS - 1)
}

/// The largest duration (ns) a bucket holds.
pub(crate) fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let power = (bucket - SUB) / SUB + 2;
    let sub = ((bucket - SUB) % SUB) as u64;
    let base = 1u64 << power;
    base + (sub + 1) * (base / SUB as u64) - 1
}

impl Histogram {
    #[cfg(test)]
    pub(crate) fn record(&self, ns: u64) {
        self.record_weighted(ns, 1);
    }

    /// Records one timed duration that stands for `weight` calls in the
    /// sum (a sampled call of a fast operation stands for the calls not
    /// timed beside it); the buckets count timed calls only.
    pub(crate) fn record_weighted(&self, ns: u64, weight: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(ns.saturating_mul(weight), Ordering::Relaxed);
    }

    /// Adds counts taken from another histogram (merging two).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn add(&self, counts: &Counts) {
        for (bucket, n) in self.buckets.iter().zip(&counts.buckets) {
            bucket.fetch_add(*n, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(counts.sum_ns, Ordering::Relaxed);
    }

    /// The counts as they are now.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a histogram's counts: quantiles, and the difference between
/// two copies (what happened in between).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum_ns: u64,
}

impl Counts {
    pub(crate) fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The duration (ns) under which a fraction `q` of the recorded ones
    /// fall: the upper bound of the bucket holding that rank (0 when
    /// nothing was recorded).
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(i);
            }
        }
        upper_bound(BUCKETS - 1)
    }

    /// What was recorded after `earlier` was taken.
    pub(crate) fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut lower = 0;
        for b in 0..BUCKETS - 1 {
            let upper = upper_bound(b);
            assert!(upper >= lower, "bucket {b}");
            assert_eq!(bucket_of(lower), b, "lower bound of bucket {b}");
            assert_eq!(bucket_of(upper), b, "upper bound of bucket {b}");
            lower = upper + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let c = h.counts();
        assert_eq!(c.total(), 1000);
        for (q, truth) in [(0.5, 500_000f64), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = c.quantile(q) as f64;
            assert!(
                got >= truth && got <= truth * 1.25,
                "q{q}: {got} vs {truth}"
            );
        }
        assert_eq!(c.sum_ns, 1000 * 1001 / 2 * 1000);
        let later = {
            h.record(5_000_000);
            h.counts()
        };
        let d = later.since(&c);
        assert_eq!(d.total(), 1);
        assert!(d.quantile(0.99) >= 5_000_000);
        assert_eq!(Counts::default().quantile(0.5), 0);
    }
}
