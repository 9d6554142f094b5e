//! Per-graft statistics: calls, commits, aborts by cause, fuel, latency.

use crate::fault::AbortCause;

/// Latency histogram buckets: bucket i counts calls under 2^(i+6) ns
/// (64 ns … ~4 s), the last one everything slower.
pub const BUCKETS: usize = 27;

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
}
