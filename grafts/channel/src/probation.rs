//! The task that ends probations: a graft loaded with `load … confirm=<ms>`
//! and not confirmed in time is unloaded ([`graft_host::confirm`]). Each
//! transport starts it beside its sessions, since only a session can begin
//! a probation.

use core::pin::pin;
use core::task::Poll;

use graft_host::Shared;
use unikernel::task;
use unikernel::time::Instant;

pub(crate) fn spawn_watcher(host: &Shared) {
    task::Builder::new()
        .name("graft-confirm")
        .spawn(watch_confirmations(host.clone()));
}

/// Unloads grafts whose confirmed load ran out of time: sleeps until the
/// earliest deadline, or until a new probation begins.
pub async fn watch_confirmations(host: Shared) {
    loop {
        let next = host.borrow_mut().expire_unconfirmed();
        let mut sleep = pin!(next.map(|ns| task::sleep_until(Instant::from_nanos(ns))));
        let mut first = true;
        core::future::poll_fn(|cx| {
            if !first {
                // Woken: a deadline passed or a probation began.
                return Poll::Ready(());
            }
            first = false;
            host.borrow_mut().confirmations().watch(cx.waker());
            match sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(()),
                _ => Poll::Pending,
            }
        })
        .await;
    }
}
