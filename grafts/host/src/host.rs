//! The graft host of one image: runtime, trusted keys, replay guard, and
//! what each management command does to them.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use graft_control::{Command, Envelope, EnvelopeError, ReplayGuard, Response, TrustedKeys};
use graft_runtime::{
    Capabilities, Clock, GraftId, Kind, Limits, LoadError, ManageError, PointId, PointSpec,
    Revocation, Runtime,
};

use crate::confirm::Confirmations;
use crate::json;

/// The host as its adapters and channels share it (one CPU, cooperative
/// tasks: borrowed only for the length of one call, never across `await`).
pub type Shared = Rc<RefCell<GraftHost>>;

/// The host, borrowed for a call at `point`, when a graft is loaded there;
/// otherwise `None`, and the caller's compiled-in policy serves without
/// building the call's context. Every adapter (receive path, scheduler,
/// cache, application events) goes through this one gate.
///
/// The host is borrowed only for the length of one call or command, never
/// across an `await`, so on one CPU it is free whenever an adapter runs.
/// Should it be borrowed all the same (a policy consulted from inside a
/// graft call or a command), the compiled-in policy serves that one call and
/// the skip is counted ([`busy_skips`], `busy_skips` in `graft stats`):
/// never silently.
pub fn grafted(host: &Shared, point: PointId) -> Option<RefMut<'_, GraftHost>> {
    match host.try_borrow_mut() {
        Ok(host) => host.runtime.is_grafted_at(point).then_some(host),
        Err(_) => {
            BUSY_SKIPS.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Calls at which the compiled-in policy served because the host was busy.
static BUSY_SKIPS: AtomicU64 = AtomicU64::new(0);

/// How many policy calls [`grafted`] passed to the compiled-in policy
/// because the host was borrowed.
pub fn busy_skips() -> u64 {
    BUSY_SKIPS.load(Ordering::Relaxed)
}

/// Host counters every image's runtime has (grafts use them through
/// `counter_add`; `stats` shows them).
pub const COUNTERS: usize = 16;

/// Why a load or replace was refused (always the sender's fault).
#[derive(Debug)]
pub enum Refusal {
    Envelope(EnvelopeError),
    NoTrustedKey,
    WrongPoint { signed_for: String, asked: String },
    WrongEngine { compiled_for: String },
    UnknownCapability(String),
    Load(LoadError),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::Envelope(e) => write!(f, "{e}"),
            Refusal::NoTrustedKey => write!(
                f,
                "this image trusts no signing key (it was built without ROOTSTOCK_GRAFT_KEYS; \
                 build it with `cargo xtask build`)"
            ),
            Refusal::WrongPoint { signed_for, asked } => write!(
                f,
                "the envelope is signed for graft point `{signed_for}`, not `{asked}`"
            ),
            Refusal::WrongEngine { compiled_for } => write!(
                f,
                "the artifact was compiled for graft engine `{compiled_for}`, but this image \
                 runs `{}`: compile it again with the same Rootstock tree as the image",
                graft_runtime::ENGINE
            ),
            Refusal::UnknownCapability(name) => {
                write!(f, "the grant names an unknown capability `{name}`")
            }
            Refusal::Load(e) => write!(f, "{e}"),
        }
    }
}

/// The answer to a refused load or replace, logged.
fn refused(point: &str, refusal: &Refusal) -> Response {
    log::info!(target: "graft", "refused a graft for {point}: {refusal}");
    Response::Err(refusal.to_string())
}

/// One image's grafts and the rules for changing them.
pub struct GraftHost {
    runtime: Runtime,
    trusted: TrustedKeys,
    replay: ReplayGuard,
    /// The declared points' names and kinds, for listings.
    points: Vec<(String, Kind)>,
    /// Grafts loaded on probation, and the removals made when it ran out.
    confirmations: Confirmations,
}

impl GraftHost {
    /// A host with no points yet, trusting `trusted`, on the image's clock.
    pub fn new(clock: Rc<dyn Clock>, trusted: TrustedKeys) -> GraftHost {
        GraftHost {
            runtime: Runtime::with_platform(
                COUNTERS,
                Limits::default(),
                clock,
                crate::native::platform(),
            ),
            trusted,
            replay: ReplayGuard::new(),
            points: Vec::new(),
            confirmations: Confirmations::default(),
        }
    }

    /// Declares a graft point (its compiled-in policy serves until a graft
    /// is loaded) and returns its handle.
    pub fn declare(&mut self, spec: PointSpec) -> Result<PointId, ManageError> {
        let (name, kind) = (spec.name.clone(), spec.kind);
        self.runtime.declare(spec)?;
        let id = self
            .runtime
            .point_id(&name)
            .ok_or(ManageError::UnknownPoint(name.clone()))?;
        self.points.push((name, kind));
        Ok(id)
    }

    /// The declared points, in declaration order.
    pub fn points(&self) -> &[(String, Kind)] {
        &self.points
    }

    /// Shares the host with the image's adapters and channels.
    pub fn share(self) -> Shared {
        Rc::new(RefCell::new(self))
    }

    /// The runtime: to declare points, call them, read their state.
    pub fn runtime(&mut self) -> &mut Runtime {
        &mut self.runtime
    }

    /// Checks an envelope at the border and installs its artifact: as a new
    /// graft on `point`, or in place of graft `old`. Nothing changes on error.
    pub fn install(
        &mut self,
        point: &str,
        old: Option<GraftId>,
        bytes: &[u8],
    ) -> Result<(GraftId, usize), Refusal> {
        let envelope = Envelope::parse(bytes).map_err(Refusal::Envelope)?;
        if self.trusted.is_empty() {
            return Err(Refusal::NoTrustedKey);
        }
        envelope.verify(&self.trusted).map_err(Refusal::Envelope)?;
        if envelope.point != point {
            return Err(Refusal::WrongPoint {
                signed_for: envelope.point.to_string(),
                asked: point.to_string(),
            });
        }
        self.replay.check(&envelope).map_err(Refusal::Envelope)?;
        if envelope.engine != graft_runtime::ENGINE {
            return Err(Refusal::WrongEngine {
                compiled_for: envelope.engine.to_string(),
            });
        }
        let granted = Capabilities::parse(envelope.grant)
            .map_err(|name| Refusal::UnknownCapability(name.to_string()))?;
        let id = match old {
            None => self.runtime.load(point, envelope.artifact, granted),
            Some(old) => self.runtime.replace(point, old, envelope.artifact, granted),
        }
        .map_err(Refusal::Load)?;
        self.replay.accept(&envelope);
        Ok((id, envelope.artifact.len()))
    }

    /// Carries out one management command.
    pub fn handle(&mut self, command: Command) -> Response {
        match command {
            Command::Load { point, envelope } => self.install_reply(&point, None, &envelope),
            Command::LoadConfirmed {
                point,
                envelope,
                within_ms,
            } => self.load_confirmed(&point, &envelope, within_ms),
            Command::Confirm { graft } => self.confirm(graft),
            Command::Replace {
                point,
                graft,
                envelope,
            } => self.install_reply(&point, Some(graft), &envelope),
            Command::Unload { point, graft } => match self.runtime.revoke(&point, graft) {
                Ok(revocation) => {
                    let how = match revocation {
                        Revocation::Clean => "clean".to_string(),
                        Revocation::Forced(None) => "forced".to_string(),
                        Revocation::Forced(Some(cause)) => format!("forced ({})", cause.name()),
                    };
                    log::info!(target: "graft", "unloaded graft {graft} from {point} ({how})");
                    Response::Ok(json::unloaded(graft, &point, &how))
                }
                Err(ManageError::UnknownGraft(_)) => {
                    Response::Err(format!("no graft {graft} at graft point `{point}`"))
                }
                Err(e) => Response::Err(e.to_string()),
            },
            Command::List => Response::Ok(json::list(&self.runtime, &self.points)),
            Command::Stats { point } => {
                if let Some(point) = &point
                    && self.runtime.point_id(point).is_none()
                {
                    return Response::Err(format!("no graft point named `{point}`"));
                }
                Response::Ok(json::stats(&self.runtime, point.as_deref()))
            }
            Command::Log => {
                Response::Ok(json::faults(&self.runtime, self.confirmations.removals()))
            }
        }
    }

    /// The grafts on probation (for the deadline task).
    pub fn confirmations(&mut self) -> &mut Confirmations {
        &mut self.confirmations
    }

    fn load_confirmed(&mut self, point: &str, envelope: &[u8], within_ms: u64) -> Response {
        match self.install(point, None, envelope) {
            Ok((id, bytes)) => {
                let now = self.runtime.state().now_ns();
                let deadline = now.saturating_add(within_ms.saturating_mul(1_000_000));
                self.confirmations.begin(id, point, deadline);
                log::info!(
                    target: "graft",
                    "loaded graft {id} on {point} ({bytes} bytes), unloaded in {within_ms} ms unless confirmed"
                );
                Response::Ok(json::on_probation(id, point, bytes, within_ms))
            }
            Err(refusal) => refused(point, &refusal),
        }
    }

    fn confirm(&mut self, graft: GraftId) -> Response {
        if self.confirmations.confirm(graft) {
            log::info!(target: "graft", "graft {graft} confirmed");
            Response::Ok(json::confirmed(graft))
        } else {
            Response::Err(format!(
                "graft {graft} is not waiting for confirmation (never, already, or too late)"
            ))
        }
    }

    /// Unloads every graft whose probation ran out by now; returns the
    /// next deadline (ns on the image's clock), if any graft is still on
    /// probation.
    pub fn expire_unconfirmed(&mut self) -> Option<u64> {
        let now = self.runtime.state().now_ns();
        for (graft, point) in self.confirmations.due(now) {
            // Gone already (unloaded, replaced, or removed by a fault):
            // nothing to do.
            if self.runtime.revoke(&point, graft).is_ok() {
                log::warn!(target: "graft", "graft {graft} on {point} was not confirmed in time: unloaded");
                self.confirmations.record(now, point, graft);
            }
        }
        self.confirmations.next_deadline()
    }

    fn install_reply(&mut self, point: &str, old: Option<GraftId>, envelope: &[u8]) -> Response {
        match self.install(point, old, envelope) {
            Ok((id, bytes)) => {
                match old {
                    None => {
                        log::info!(target: "graft", "loaded graft {id} on {point} ({bytes} bytes)")
                    }
                    Some(old) => log::info!(
                        target: "graft",
                        "replaced graft {old} on {point} with graft {id} ({bytes} bytes)"
                    ),
                }
                Response::Ok(json::installed(id, point, bytes, old))
            }
            Err(refusal) => refused(point, &refusal),
        }
    }
}

/// The image's clock, as the graft runtime reads it.
#[cfg(target_os = "none")]
struct KernelClock;

#[cfg(target_os = "none")]
impl Clock for KernelClock {
    fn now_ns(&self) -> u64 {
        unikernel::arch::clock_now().as_nanos()
    }
}

/// The graft host of an image: on the kernel's clock, trusting the keys
/// built in ([`crate::built_in_keys`]).
#[cfg(target_os = "none")]
pub fn image_host() -> Shared {
    GraftHost::new(Rc::new(KernelClock), crate::built_in_keys()).share()
}
