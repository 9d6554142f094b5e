//! Each graft point's ABI, as the image defines it and a graft sees it:
//! the point's name and the values its `graft_main` may return. The graft
//! host validates results against these same constants, so a graft that
//! uses them and the image that reads them cannot disagree.
//!
//! The signatures and contexts are in the README's table of points (and
//! in `graft_host::points`, which declares them).

/// `net.rx`: an event on every received Ethernet frame, before the
/// compiled-in receive policy. `graft_main(len) -> verdict`; the context is
/// the frame.
pub mod net_rx {
    /// The point's name.
    pub const NAME: &str = "net.rx";
    /// Hand the frame on (to the next handler, then the compiled-in policy).
    pub const PASS: i32 = 0;
    /// Drop the frame.
    pub const DROP: i32 = 1;
    /// Send the (rewritten) context back out as the reply to the frame.
    pub const ANSWER: i32 = 2;
}

/// `http.request`: an event on every HTTP request, before routing.
/// `graft_main(len) -> status`; the context is `METHOD SP PATH`.
pub mod http_request {
    /// The point's name.
    pub const NAME: &str = "http.request";
    /// Carry on: route the request as usual.
    pub const CARRY_ON: i32 = 0;
    /// The HTTP statuses a handler may answer with instead.
    pub const STATUSES: core::ops::RangeInclusive<i32> = 100..=599;
}

/// `sched.pick`: replaces the scheduler's pick-next. `graft_main(n) ->
/// index`; the context is `n` ready tasks, 4 bytes each (`[priority,
/// group, 0, 0]`).
pub mod sched_pick {
    /// The point's name.
    pub const NAME: &str = "sched.pick";
    /// The largest task index a pick may return.
    pub const MAX_INDEX: i32 = 255;
}
