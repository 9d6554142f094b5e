//! The graft points images declare, with their signatures, validators and
//! budgets. An image declares the ones it has (the HTTP image: `net.rx`
//! and `http.request`; a scheduling image: `sched.pick`); each serves its
//! compiled-in policy until a graft is loaded on it.
//!
//! | point | kind | graft_main | context | result |
//! |---|---|---|---|---|
//! | `net.rx` | event, 4 handlers | `(len: i32) -> i32` | the Ethernet frame | 0 pass, 1 drop, 2 answer with the (rewritten) context |
//! | `sched.pick` | replace | `(n: i32) -> i32` | `n` ready tasks, 4 bytes each: `[priority, group, 0, 0]` | index of the task to run |
//! | `http.request` | event, 4 handlers | `(len: i32) -> i32` | `METHOD SP PATH` | 0 carry on, or an HTTP status (100..=599) to answer with |

use graft_runtime::{Capabilities, Capability, PointSpec, Val, ValType};
use graft_sdk::points::{http_request, net_rx, sched_pick};

/// The receive path's event point.
pub const NET_RX: &str = net_rx::NAME;
/// The scheduler's pick-next replace point.
pub const SCHED_PICK: &str = sched_pick::NAME;
/// The HTTP image's request event.
pub const HTTP_REQUEST: &str = http_request::NAME;

/// What an image lets grafts at a policy or application point use, at
/// most (the loader's signed grant is intersected with it): reading the
/// context, their own maps, counters, the clock and the log. Only the
/// receive path also allows rewriting its context (to answer a frame),
/// locks and buffers.
pub const READ_AND_COUNT: Capabilities = Capabilities::NONE
    .with(Capability::Context)
    .with(Capability::Maps)
    .with(Capability::Counters)
    .with(Capability::Time)
    .with(Capability::Log);

fn one_i32_in(results: &[Val], range: core::ops::RangeInclusive<i32>) -> bool {
    matches!(results, [Val::I32(v)] if range.contains(v))
}

fn rx_verdict(results: &[Val]) -> bool {
    one_i32_in(results, net_rx::PASS..=net_rx::ANSWER)
}

fn task_index(results: &[Val]) -> bool {
    one_i32_in(results, 0..=sched_pick::MAX_INDEX)
}

fn http_status(results: &[Val]) -> bool {
    matches!(results, [Val::I32(http_request::CARRY_ON)])
        || one_i32_in(results, http_request::STATUSES)
}

/// `net.rx`: packet handlers with guards (XDP/ASH style).
pub fn net_rx() -> PointSpec {
    PointSpec {
        validator: rx_verdict,
        ..PointSpec::event(NET_RX, &[ValType::I32], &[ValType::I32], 4)
    }
}

/// `sched.pick`: a scheduling graft replaces the image's pick-next.
pub fn sched_pick() -> PointSpec {
    PointSpec {
        validator: task_index,
        capabilities: READ_AND_COUNT,
        ..PointSpec::replace(SCHED_PICK, &[ValType::I32], &[ValType::I32])
    }
}

/// `http.request`: an application event (SPIN: an exported procedure as
/// an event), run before the server routes a request.
pub fn http_request() -> PointSpec {
    PointSpec {
        validator: http_status,
        capabilities: READ_AND_COUNT,
        ..PointSpec::event(HTTP_REQUEST, &[ValType::I32], &[ValType::I32], 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_refuse_nonsense() {
        assert!(rx_verdict(&[Val::I32(1)]));
        assert!(!rx_verdict(&[Val::I32(3)]));
        assert!(!rx_verdict(&[Val::I64(0)]));
        assert!(task_index(&[Val::I32(0)]) && !task_index(&[Val::I32(-1)]));
        assert!(http_status(&[Val::I32(0)]) && http_status(&[Val::I32(403)]));
        assert!(!http_status(&[Val::I32(42)]) && !http_status(&[]));
    }
}
