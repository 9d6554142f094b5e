//! The undo log, nesting, locks and limits, without any graft.

use super::*;
use crate::testing::Ticks;
use alloc::rc::Rc;

fn state() -> HostState {
    let mut s = HostState::new(4, Limits::default(), Rc::new(Ticks::default()));
    s.context = b"hello world".to_vec();
    s
}

#[test]
fn abort_undoes_everything_in_reverse_and_releases() {
    let mut s = state();
    s.begin(1);
    s.write_context(0, b"HELLO").unwrap();
    s.write_context(1, b"xx").unwrap();
    s.counter_add(2, 5).unwrap();
    s.counter_add(2, 5).unwrap();
    s.map_put(0, 7, 70).unwrap();
    s.lock(3).unwrap();
    let handle = s.buffer_alloc(100).unwrap();
    assert_eq!(s.counter(2), Some(10));
    s.abort();
    assert_eq!(s.context, b"hello world");
    assert_eq!(s.counter(2), Some(0));
    assert_eq!(s.map_get(1, 0, 7), None);
    assert_eq!(s.locks_held(), 0);
    assert_eq!(s.buffer_bytes(1), 0);
    assert!(s.buffers[handle as usize].is_none());
}

#[test]
fn nested_abort_undoes_only_the_inner_work_and_outer_commit_keeps_the_rest() {
    let mut s = state();
    s.begin(1);
    s.counter_add(0, 1).unwrap();
    s.begin(2);
    s.counter_add(0, 10).unwrap();
    s.map_put(0, 1, 1).unwrap();
    s.abort();
    assert_eq!(s.counter(0), Some(1));
    s.begin(2);
    s.counter_add(1, 100).unwrap();
    s.lock(5).unwrap();
    s.commit();
    assert_eq!(
        s.locks_held(),
        1,
        "inner commit hands its lock to the outer transaction"
    );
    s.commit();
    assert_eq!((s.counter(0), s.counter(1)), (Some(1), Some(100)));
    assert_eq!(s.locks_held(), 0);
}

#[test]
fn an_inner_commit_is_undone_by_an_outer_abort() {
    let mut s = state();
    s.begin(1);
    s.begin(2);
    s.counter_add(3, 9).unwrap();
    s.commit();
    s.abort();
    assert_eq!(s.counter(3), Some(0));
}

#[test]
fn a_nested_transaction_of_another_graft_shares_its_ancestors_locks() {
    let mut s = state();
    s.begin(1);
    s.lock(3).unwrap();
    s.begin(2);
    assert_eq!(s.lock(3), Ok(()), "held by an ancestor: no wait");
    s.lock(4).unwrap();
    s.abort();
    assert_eq!(
        s.locks_held(),
        1,
        "the inner abort keeps the ancestor's lock"
    );
    s.begin(2);
    s.lock(4).unwrap();
    s.commit();
    s.commit();
    assert_eq!(s.locks_held(), 0);
}

#[test]
fn an_inner_commit_across_a_context_frame_forgets_the_events_context() {
    let mut s = state();
    s.begin(1);
    s.write_context(0, b"H").unwrap();
    // An emitted event with its own, longer context.
    let mut event = b"an emitted event's bytes".to_vec();
    s.enter_frame();
    core::mem::swap(&mut s.context, &mut event);
    s.begin(2);
    s.write_context(20, b"XXXX").unwrap();
    s.counter_add(0, 5).unwrap();
    s.commit();
    core::mem::swap(&mut s.context, &mut event);
    s.leave_frame();
    assert_eq!(event, b"an emitted event's bXXXX");
    // Replaying the inner context record here would hit bytes it never
    // saw (or index past them); only the counter record came up.
    s.abort();
    assert_eq!(s.context, b"hello world");
    assert_eq!(s.counter(0), Some(0));
}

#[test]
fn releasing_a_graft_forgets_open_records_of_its_maps_and_buffers() {
    let mut s = state();
    s.begin(2);
    s.map_put(0, 1, 5).unwrap();
    let kept = s.buffer_alloc(8).unwrap();
    s.commit();
    s.begin(1);
    s.begin(2);
    s.map_put(0, 1, 10).unwrap();
    s.buffer_free(kept).unwrap();
    s.buffer_alloc(4).unwrap();
    s.commit();
    s.release_graft(2);
    s.abort();
    assert_eq!(
        s.map_entries(2),
        0,
        "no entry of a released graft comes back"
    );
    assert_eq!(s.buffer_bytes(2), 0, "nor a buffer");
}

#[test]
fn contested_locks_time_out_and_bad_arguments_are_refused() {
    let mut s = state();
    s.host_lock(4, true);
    s.begin(1);
    let before = s.now_ns();
    assert_eq!(s.lock(4), Err(AbortCause::LockTimeout));
    // At once: one CPU, nothing could release it, so the clock is not even
    // read while "waiting" (each reading of this clock advances it 1 µs).
    assert_eq!(s.now_ns() - before, 1_000, "the contended lock waited");
    assert_eq!(s.lock(-1), Err(AbortCause::BadArgument));
    assert_eq!(s.lock(1_000), Err(AbortCause::BadArgument));
    assert_eq!(s.write_context(9, b"xyz"), Err(AbortCause::BadArgument));
    assert_eq!(
        s.write_context(i32::MAX, b"x"),
        Err(AbortCause::BadArgument)
    );
    assert_eq!(s.context_slice(-1, 2).err(), Some(AbortCause::BadArgument));
    assert_eq!(s.counter_add(99, 1), Err(AbortCause::BadArgument));
    assert_eq!(s.map_put(-1, 0, 0), Err(AbortCause::BadArgument));
    assert_eq!(s.buffer_free(0), Err(AbortCause::BadArgument));
    s.abort();
    s.host_lock(4, false);
    assert_eq!(s.locks_held(), 0);
}

#[test]
fn an_aborted_free_brings_the_buffer_back() {
    let mut s = state();
    s.begin(1);
    let handle = s.buffer_alloc(64).unwrap();
    s.commit();
    s.begin(1);
    s.buffer_free(handle).unwrap();
    assert_eq!(s.buffer_bytes(1), 0);
    s.abort();
    assert_eq!(s.buffer_bytes(1), 64);
    s.begin(2);
    assert_eq!(
        s.buffer_free(handle),
        Err(AbortCause::BadArgument),
        "not graft 2's buffer"
    );
    s.abort();
    assert_eq!(s.buffer_bytes(1), 64);
}

#[test]
fn limits_are_resource_aborts() {
    let limits = Limits {
        map_entries: 2,
        undo_records: 5,
        buffer_bytes: 10,
        ..Limits::default()
    };
    let mut s = HostState::new(1, limits, Rc::new(Ticks::default()));
    s.begin(1);
    s.map_put(0, 1, 1).unwrap();
    s.map_put(0, 2, 1).unwrap();
    s.map_put(0, 2, 5).unwrap(); // an update needs no new entry
    assert_eq!(s.map_put(0, 3, 1), Err(AbortCause::ResourceLimit));
    assert_eq!(s.buffer_alloc(11), Err(AbortCause::ResourceLimit));
    s.counter_add(0, 1).unwrap();
    s.buffer_alloc(4).unwrap();
    assert_eq!(
        s.counter_add(0, 1),
        Err(AbortCause::ResourceLimit),
        "undo log full"
    );
    s.abort();
    assert_eq!(s.map_entries(1), 0);
}

#[test]
fn accessors_outside_a_transaction_are_forbidden() {
    let mut s = state();
    assert_eq!(s.counter_add(0, 1), Err(AbortCause::ForbiddenAccessor));
    assert_eq!(s.map_put(0, 1, 1), Err(AbortCause::ForbiddenAccessor));
    assert_eq!(s.lock(1), Err(AbortCause::ForbiddenAccessor));
}
