//! Application events: graft points an image declares for itself (SPIN:
//! any exported procedure can be an event), such as the HTTP image's
//! `http.request`. The application raises the event where it wants grafts
//! to have a say; with no graft loaded, raising costs one borrow and one
//! check, and the context is never built.

use alloc::vec::Vec;

use graft_runtime::{ManageError, PointId, PointSpec, Val};

use crate::host::{Shared, grafted};

/// A declared application event.
pub struct Event {
    host: Shared,
    point: PointId,
}

impl Event {
    /// Declares the event point `spec` on `host`.
    pub fn declare(host: &Shared, spec: PointSpec) -> Result<Event, ManageError> {
        let point = host.borrow_mut().declare(spec)?;
        Ok(Event {
            host: host.clone(),
            point,
        })
    }

    /// Runs the event's handlers (each behind its guard) on the context
    /// `context()` builds, with its length as the argument; returns the
    /// first non-zero result a handler committed, or `None` (no graft, all
    /// returned 0, or every one that did not aborted).
    pub fn raise(&self, context: impl FnOnce() -> Vec<u8>) -> Option<i32> {
        let mut host = grafted(&self.host, self.point)?;
        let mut context = context();
        let len = Val::I32(i32::try_from(context.len()).unwrap_or(i32::MAX));
        host.runtime()
            .dispatch_at(self.point, &mut context, &[len])
            .into_iter()
            .find_map(|(_, outcome)| match outcome.as_deref() {
                Ok([Val::I32(v)]) if *v != 0 => Some(*v),
                _ => None,
            })
    }
}
