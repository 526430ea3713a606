//! Turns the kernel's cumulative log-linear histograms into per-window HDR histograms and
//! the percentiles the reports show.

use hdrhistogram::Histogram;
use probe_common::{Hist, NUM_BUCKETS, bucket_lower_bound, bucket_upper_bound};
use serde::Serialize;

/// `cur - prev` for cumulative histograms (the kernel's counters only grow). The max of a
/// window is bounded by its highest non-empty bucket and by the cumulative max.
pub fn delta(cur: &Hist, prev: &Hist) -> Hist {
    let mut d = Hist::ZERO;
    d.count = cur.count.saturating_sub(prev.count);
    d.sum_ns = cur.sum_ns.saturating_sub(prev.sum_ns);
    for i in 0..NUM_BUCKETS {
        d.buckets[i] = cur.buckets[i].saturating_sub(prev.buckets[i]);
    }
    d.max_ns = if cur.max_ns > prev.max_ns {
        cur.max_ns
    } else {
        match d.buckets.iter().rposition(|&c| c > 0) {
            Some(i) => bucket_upper_bound(i).min(cur.max_ns),
            None => 0,
        }
    };
    d
}

/// An HDR histogram (3 significant digits) holding the kernel buckets' midpoints.
pub fn to_hdr(h: &Hist) -> Histogram<u64> {
    let mut hdr = Histogram::<u64>::new_with_bounds(1, 1 << 41, 3).expect("valid bounds");
    for (i, &n) in h.buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let lo = bucket_lower_bound(i);
        let hi = bucket_upper_bound(i).min(h.max_ns.max(lo));
        let mid = lo + (hi - lo) / 2;
        hdr.saturating_record_n(mid.max(1), n);
    }
    hdr
}

/// Percentiles of a set of durations, in integer nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub total_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Latency {
    pub fn from_hist(h: &Hist) -> Latency {
        if h.count == 0 {
            return Latency::default();
        }
        let hdr = to_hdr(h);
        // Percentiles never exceed the exact maximum the kernel saw.
        let q = |p: f64| hdr.value_at_quantile(p).min(h.max_ns);
        Latency {
            count: h.count,
            total_ns: h.sum_ns,
            mean_ns: h.sum_ns / h.count,
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
            max_ns: h.max_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_common::bucket_index;

    fn hist_of(values: &[u64]) -> Hist {
        let mut h = Hist::ZERO;
        for &v in values {
            h.count += 1;
            h.sum_ns += v;
            h.max_ns = h.max_ns.max(v);
            h.buckets[bucket_index(v)] += 1;
        }
        h
    }

    #[test]
    fn percentiles_within_bucket_resolution() {
        let values: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let l = Latency::from_hist(&hist_of(&values));
        assert_eq!(l.count, 1000);
        assert_eq!(l.max_ns, 1_000_000);
        assert_eq!(l.total_ns, values.iter().sum::<u64>());
        for (got, want) in [(l.p50_ns, 500_000.0), (l.p99_ns, 990_000.0)] {
            let err = (got as f64 - want).abs() / want;
            assert!(err < 0.0625, "got {got}, want {want}");
        }
    }

    #[test]
    fn delta_of_growing_counters() {
        let a = hist_of(&[10, 20, 5000]);
        let mut all = vec![10, 20, 5000];
        all.extend([100_000, 200_000]);
        let b = hist_of(&all);
        let d = delta(&b, &a);
        assert_eq!(d.count, 2);
        assert_eq!(d.sum_ns, 300_000);
        assert_eq!(d.max_ns, 200_000);
        let same = delta(&b, &b);
        assert_eq!(same.count, 0);
        assert_eq!(Latency::from_hist(&same), Latency::default());
    }

    #[test]
    fn window_max_bounded_by_bucket_when_cumulative_max_is_older() {
        let a = hist_of(&[1_000_000]);
        let b = hist_of(&[1_000_000, 1000]);
        let d = delta(&b, &a);
        assert_eq!(d.count, 1);
        assert!(d.max_ns >= 1000 && d.max_ns <= 1063, "{}", d.max_ns);
    }
}
