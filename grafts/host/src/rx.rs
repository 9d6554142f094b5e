//! The receive path as a graft point: [`GraftRx`] is the image's
//! [`RxPolicy`] — every frame goes first to the handlers grafted on
//! `net.rx` (each behind its guard), and, when none decides, to the
//! compiled-in policy `P`.
//!
//! Handlers run in load order; the first that does not pass decides:
//! drop, or answer with its (rewritten) context as the reply frame (XDP's
//! `XDP_TX`). A handler that aborts counts as passing: its changes are
//! undone and the frame goes on. With no graft loaded the cost is one
//! borrow and one check before `P` runs.

use alloc::vec::Vec;

use graft_runtime::{PointId, Val};
use net::{RxPolicy, Verdict};

use crate::host::{Shared, grafted};
use graft_sdk::points::net_rx::{ANSWER, DROP};

/// `P`, extended by the grafts on `net.rx`.
#[derive(Default)]
pub struct GraftRx<P: RxPolicy> {
    inner: P,
    /// The host and the `net.rx` point (`None`: no host, always `P`).
    host: Option<(Shared, PointId)>,
    /// The reply a handler wrote, between `on_receive` and `answer`.
    reply: Vec<u8>,
    /// The frame as the handlers' context (kept: no allocation per frame).
    context: Vec<u8>,
}

impl<P: RxPolicy> GraftRx<P> {
    /// Declares `net.rx` on `host` and wraps `inner`.
    pub fn new(host: &Shared, inner: P) -> Result<GraftRx<P>, graft_runtime::ManageError> {
        let point = host.borrow_mut().declare(crate::points::net_rx())?;
        Ok(GraftRx {
            inner,
            host: Some((host.clone(), point)),
            reply: Vec::new(),
            context: Vec::new(),
        })
    }

    /// The grafts' verdict, or `None` when no graft decided.
    fn grafted(&mut self, frame: &[u8]) -> Option<Verdict> {
        let (host, point) = self.host.as_ref()?;
        let mut host = grafted(host, *point)?;
        self.context.clear();
        self.context.extend_from_slice(frame);
        let len = Val::I32(i32::try_from(frame.len()).unwrap_or(i32::MAX));
        for (_, outcome) in host
            .runtime()
            .dispatch_at(*point, &mut self.context, &[len])
        {
            match outcome.as_deref() {
                Ok([Val::I32(DROP)]) => return Some(Verdict::Drop),
                Ok([Val::I32(ANSWER)]) => {
                    self.reply = core::mem::take(&mut self.context);
                    return Some(Verdict::Answer);
                }
                _ => {}
            }
        }
        None
    }
}

impl<P: RxPolicy> RxPolicy for GraftRx<P> {
    const NAME: &'static str = "grafted (net.rx)";

    fn on_receive(&mut self, frame: &[u8]) -> Verdict {
        match self.grafted(frame) {
            Some(verdict) => verdict,
            None => self.inner.on_receive(frame),
        }
    }

    fn answer(&mut self, request: &[u8], reply: &mut [u8]) -> usize {
        if self.reply.is_empty() {
            return self.inner.answer(request, reply);
        }
        let frame = core::mem::take(&mut self.reply);
        match reply.get_mut(..frame.len()) {
            Some(out) => {
                out.copy_from_slice(&frame);
                frame.len()
            }
            None => 0,
        }
    }
}
