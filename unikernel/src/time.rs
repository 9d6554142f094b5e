//! Time: the monotonic clock, conversions between clock ticks and
//! nanoseconds, and the queue of timers that sleeping tasks wait on.
//!
//! The clock is the TSC, read through the architecture layer and converted
//! with a [`Calibration`] measured once (lazily, on first use). Everything in
//! this module except [`now`] is pure arithmetic, tested on the host.

pub use core::time::Duration;

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;
use core::task::Waker;

use crate::slab::Slab;

/// Clock rates measured at calibration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Local APIC timer ticks per second (after its divider).
    pub apic_hz: u64,
}

impl Calibration {
    /// Used only when no reference clock can be found at all.
    pub const NOMINAL: Calibration = Calibration {
        tsc_hz: 2_000_000_000,
        apic_hz: 62_500_000,
    };

    /// The rates implied by `tsc_ticks` and `apic_ticks` elapsing in `window_ns`.
    pub fn from_window(window_ns: u64, tsc_ticks: u64, apic_ticks: u64) -> Calibration {
        let per_second =
            |ticks: u64| (u128::from(ticks) * 1_000_000_000 / u128::from(window_ns.max(1))) as u64;
        Calibration {
            tsc_hz: per_second(tsc_ticks).max(1),
            apic_hz: per_second(apic_ticks).max(1),
        }
    }

    /// TSC ticks → nanoseconds.
    pub fn tsc_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.tsc_hz)) as u64
    }

    /// Nanoseconds → APIC timer ticks, rounded up and clamped to `u32`
    /// (a longer sleep just wakes early and re-arms).
    pub fn ns_to_apic_ticks(&self, ns: u64) -> u32 {
        let ticks = (u128::from(ns) * u128::from(self.apic_hz)).div_ceil(1_000_000_000);
        ticks.clamp(1, u128::from(u32::MAX)) as u32
    }
}

/// TSC ticks → nanoseconds as one multiply and shift (a 32.32 fixed-point
/// factor), for the clock reads on hot paths: a division by the TSC rate
/// costs tens of instructions, this a handful. Within 1 ns of
/// [`Calibration::tsc_to_ns`] per second elapsed, and monotonic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscScale {
    /// Nanoseconds per tick, times 2^32, rounded.
    ns_per_tick_32: u64,
}

impl TscScale {
    pub fn new(tsc_hz: u64) -> TscScale {
        let hz = u128::from(tsc_hz.max(1));
        let factor = ((1_000_000_000u128 << 32) + hz / 2) / hz;
        TscScale {
            ns_per_tick_32: u64::try_from(factor).unwrap_or(u64::MAX),
        }
    }

    pub fn to_ns(self, ticks: u64) -> u64 {
        let ns = (u128::from(ticks) * u128::from(self.ns_per_tick_32) + (1 << 31)) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// A point on the monotonic clock, in nanoseconds since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    pub const fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + duration`, saturating at the end of time.
    pub fn saturating_add(self, duration: Duration) -> Instant {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }
}

/// The current time on the monotonic clock.
#[cfg(target_os = "none")]
pub fn now() -> Instant {
    crate::arch::clock_now()
}

/// Identifies a pending timer.
pub type TimerId = crate::slab::Key;

/// Cancelled deadlines the heap may hold beyond twice the pending timers
/// before it drops them.
const COMPACT_SLACK: usize = 64;

/// Timers waiting for their deadline, earliest first.
#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    wakers: Slab<Waker>,
}

impl TimerQueue {
    pub const fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            wakers: Slab::new(),
        }
    }

    /// Registers `waker` to be woken at `deadline`; returns the timer's id.
    pub fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerId {
        let id = self.wakers.insert(waker);
        self.heap.push(Reverse((deadline, id)));
        id
    }

    /// Replaces the waker of a pending timer (a re-polled sleep).
    pub fn update(&mut self, id: TimerId, waker: &Waker) {
        if let Some(slot) = self.wakers.get_mut(id) {
            slot.clone_from(waker);
        }
    }

    /// Forgets a timer (its future was dropped early). Its deadline stays
    /// in the heap until it is due or until cancelled entries outnumber
    /// the pending timers, when the heap drops them all: a server that
    /// arms an idle time-out per request and cancels it when the request
    /// comes would otherwise hold one entry per request for the whole
    /// time-out, so that its memory grew with the request rate.
    pub fn cancel(&mut self, id: TimerId) {
        self.wakers.remove(id);
        if self.heap.len() > 2 * self.wakers.len() + COMPACT_SLACK {
            let wakers = &self.wakers;
            self.heap.retain(|Reverse((_, id))| wakers.contains(*id));
        }
    }

    /// Deadlines in the heap, cancelled ones included.
    pub fn queued(&self) -> usize {
        self.heap.len()
    }

    /// Whether timer `id` is still pending.
    pub fn is_pending(&self, id: TimerId) -> bool {
        self.wakers.contains(id)
    }

    /// Wakes every timer due at `now`; returns how many fired.
    pub fn fire_due(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(waker) = self.wakers.remove(id) {
                waker.wake();
                fired += 1;
            }
        }
        fired
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if self.wakers.contains(id) {
                return Some(deadline);
            }
            self.heap.pop(); // cancelled
        }
        None
    }
}

/// Called from the timer interrupt: nothing to do but return, the idle loop
/// wakes from `hlt` and fires due timers itself.
#[cfg(target_os = "none")]
pub fn on_timer_interrupt() {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_fixed_point_scale_stays_within_a_nanosecond_a_second() {
        for hz in [
            1_000_000_000,
            2_500_000_000,
            2_893_437_111,
            3_000_000_007,
            1,
        ] {
            let c = Calibration {
                tsc_hz: hz,
                apic_hz: 1,
            };
            let scale = TscScale::new(hz);
            for ticks in [0, 1, hz / 3, hz, hz * 60, hz * 3600 * 24] {
                let exact = c.tsc_to_ns(ticks);
                let fast = scale.to_ns(ticks);
                let seconds = exact / 1_000_000_000 + 1;
                assert!(
                    exact.abs_diff(fast) <= seconds,
                    "{hz} Hz, {ticks} ticks: {exact} vs {fast}"
                );
            }
            assert!(scale.to_ns(hz) <= scale.to_ns(hz + 1));
        }
        assert_eq!(
            TscScale::new(2_500_000_000).to_ns(2_500_000_000),
            1_000_000_000
        );
    }

    #[test]
    fn calibration_converts_both_ways() {
        let c = Calibration::from_window(2_000_000, 5_000_000, 125_000);
        assert_eq!(c.tsc_hz, 2_500_000_000);
        assert_eq!(c.apic_hz, 62_500_000);
        assert_eq!(c.tsc_to_ns(2_500_000_000), 1_000_000_000);
        assert_eq!(
            c.tsc_to_ns(u64::MAX) / 1_000_000_000,
            u64::MAX / 2_500_000_000
        );
        assert_eq!(c.ns_to_apic_ticks(1_000), 63); // 62.5 rounded up
        assert_eq!(c.ns_to_apic_ticks(0), 1);
        assert_eq!(c.ns_to_apic_ticks(u64::MAX), u32::MAX);
    }

    #[test]
    fn zero_window_does_not_divide_by_zero() {
        let c = Calibration::from_window(0, 0, 0);
        assert!(c.tsc_hz >= 1 && c.apic_hz >= 1);
    }

    #[test]
    fn instants_saturate() {
        let t = Instant::from_nanos(10);
        assert_eq!(
            t.saturating_duration_since(Instant::from_nanos(20)),
            Duration::ZERO
        );
        assert_eq!(t.saturating_add(Duration::MAX).as_nanos(), u64::MAX);
    }

    #[test]
    fn timers_fire_in_deadline_order_and_cancel() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut q = TimerQueue::new();
        let late = q.insert(Instant::from_nanos(300), waker.clone());
        let early = q.insert(Instant::from_nanos(100), waker.clone());
        let cancelled = q.insert(Instant::from_nanos(50), waker.clone());
        q.cancel(cancelled);
        assert_eq!(q.next_deadline(), Some(Instant::from_nanos(100)));
        assert_eq!(q.fire_due(Instant::from_nanos(99)), 0);
        assert_eq!(q.fire_due(Instant::from_nanos(100)), 1);
        assert!(!q.is_pending(early) && q.is_pending(late));
        assert_eq!(q.next_deadline(), Some(Instant::from_nanos(300)));
        assert_eq!(q.fire_due(Instant::from_nanos(1000)), 1);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cancelled_timers_do_not_pile_up_until_their_deadline() {
        let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut q = TimerQueue::new();
        let pending = q.insert(Instant::from_nanos(1), waker.clone());
        // A keep-alive server: a 15 s idle time-out armed per request and
        // cancelled when the request arrives, 100,000 times.
        for i in 0..100_000u64 {
            let id = q.insert(Instant::from_nanos(15_000_000_000 + i), waker.clone());
            q.cancel(id);
            assert!(q.queued() <= 2 + 2 * COMPACT_SLACK, "{} queued", q.queued());
        }
        assert!(q.is_pending(pending));
        assert_eq!(q.next_deadline(), Some(Instant::from_nanos(1)));
        assert_eq!(q.fire_due(Instant::from_nanos(u64::MAX)), 1);
        assert_eq!(q.next_deadline(), None);
    }
}
