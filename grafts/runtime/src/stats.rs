//! Per-graft statistics: calls, commits, aborts by cause, fuel, latency.
//!
//! Latency is sampled: one call in [`LATENCY_EVERY`] is timed (the first,
//! then every eighth). Timing a call takes two clock reads, which in the
//! image cost about as much as the rest of a null graft's transaction
//! bookkeeping; Linux keeps its BPF programs' run-time statistics off by
//! default for the same reason. Counts, aborts and fuel cover every call.

use crate::fault::AbortCause;

/// Latency histogram buckets: bucket 0 counts calls under 64 ns, bucket
/// i > 0 those in [2^(i+5), 2^(i+6)) ns (up to ~4 s), the last one
/// everything slower ([`bucket_bounds`]).
pub const BUCKETS: usize = 27;

/// One call in this many has its latency recorded.
pub const LATENCY_EVERY: u64 = 8;

/// The range of nanoseconds histogram bucket `i` counts: `[low, high)`
/// (`high` is `u64::MAX` for the last bucket).
pub fn bucket_bounds(i: usize) -> (u64, u64) {
    let shift = |s: usize| 1u64.checked_shl(s as u32).unwrap_or(u64::MAX);
    let low = if i == 0 { 0 } else { shift(i + 5) };
    let high = if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        shift(i + 6)
    };
    (low, high)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraftStats {
    pub calls: u64,
    pub commits: u64,
    pub aborts: [u64; AbortCause::ALL.len()],
    pub fuel_used: u64,
    pub latency: [u64; BUCKETS],
    /// Calls skipped because the guard said no.
    pub guarded_out: u64,
}

impl GraftStats {
    pub fn record_abort(&mut self, cause: AbortCause) {
        self.aborts[cause as usize] += 1;
    }

    pub fn aborts_by(&self, cause: AbortCause) -> u64 {
        self.aborts[cause as usize]
    }

    pub fn total_aborts(&self) -> u64 {
        self.aborts.iter().sum()
    }

    /// Whether the call about to be counted is one whose latency is
    /// recorded (call this before incrementing `calls`).
    pub fn times_next_call(&self) -> bool {
        self.calls.is_multiple_of(LATENCY_EVERY)
    }

    pub fn record_latency(&mut self, ns: u64) {
        let bucket = (64 - ns.leading_zeros()).saturating_sub(6) as usize;
        self.latency[bucket.min(BUCKETS - 1)] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_power_of_two_buckets() {
        let mut stats = GraftStats::default();
        for ns in [0, 63, 64, 127, 128, 1_000_000, u64::MAX] {
            stats.record_latency(ns);
        }
        assert_eq!(stats.latency[0], 2); // 0 and 63
        assert_eq!(stats.latency[1], 2); // 64..128
        assert_eq!(stats.latency[2], 1); // 128
        assert_eq!(stats.latency[BUCKETS - 1], 1);
        assert_eq!(stats.latency.iter().sum::<u64>(), 7);
    }

    #[test]
    fn bucket_bounds_are_where_record_latency_puts_a_latency() {
        for i in 0..BUCKETS {
            let (low, high) = bucket_bounds(i);
            assert!(low < high, "bucket {i}");
            for ns in [low, high - 1] {
                let mut stats = GraftStats::default();
                stats.record_latency(ns);
                assert_eq!(stats.latency[i], 1, "{ns} ns belongs in bucket {i}");
            }
        }
        assert_eq!(bucket_bounds(1), (64, 128));
    }

    #[test]
    fn one_call_in_latency_every_is_timed_starting_with_the_first() {
        let mut stats = GraftStats::default();
        let timed = (0..3 * LATENCY_EVERY)
            .filter(|_| {
                let timed = stats.times_next_call();
                stats.calls += 1;
                timed
            })
            .count();
        assert_eq!(timed, 3);
        let mut fresh = GraftStats::default();
        assert!(fresh.times_next_call());
        fresh.calls = 1;
        assert!(!fresh.times_next_call());
    }
}
