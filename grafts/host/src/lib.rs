//! Grafts in a running image: the bridge between the graft runtime
//! (`graft-runtime`), the management protocol (`graft-control`) and the
//! kernel and network stack an image runs on.
//!
//! An image that takes grafts builds one [`GraftHost`] at boot
//! ([`image_host`]): the runtime, the graft points the image declares
//! ([`points`]: the scheduler's `sched.pick`, the network's `net.rx`, the
//! block cache's points, and events the application declares itself, such
//! as the HTTP image's `http.request`), the public keys the image was built
//! to trust, and the replay guard. The host is shared as [`Shared`]
//! (`Rc<RefCell<…>>`: one CPU, cooperative tasks, and no borrow is ever
//! held across an `await`) by the adapters that turn a policy call into a
//! graft call — [`rx::GraftRx`] for the receive path (feature `net`),
//! [`sched::install`] for pick-next, [`storage`] for the block cache,
//! [`app::Event`] for application events — and by the management channel
//! (the `graft-channel` crate), whose sessions hand each decoded command
//! to [`GraftHost::handle`].
//!
//! The channel's transports live in `graft-channel`, and the receive-path
//! adapter behind the `net` feature, so that an image links only what it
//! uses: a scheduling image on the serial console compiles neither the
//! network stack nor a TCP server, and the `graftbench` test image no
//! channel at all.
//!
//! Loading is authenticated at the border, in this order: the envelope
//! parses, its signer is a trusted key, the signature holds, it was signed
//! for this point, its sequence number is fresh, its capability grant names
//! real capabilities; only then does the runtime see the module (and
//! validate it, and check every import against the grant intersected with
//! what the point allows). A refusal at any step changes nothing. A load
//! may be put on probation ([`confirm`]) so that a graft nobody confirms
//! undoes itself.
//!
//! What this crate must never do: let a graft's failure panic the image,
//! hold the host borrowed across an `await`, or accept a module that did
//! not come in a verified envelope.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod app;
pub mod confirm;
pub mod host;
mod json;
pub mod native;
pub mod points;
#[cfg(feature = "net")]
pub mod rx;
pub mod sched;
pub mod storage;

#[cfg(target_os = "none")]
pub use host::image_host;
pub use host::{GraftHost, Shared};

/// The signing keys this image trusts, compiled in by `cargo xtask build`
/// from `ROOTSTOCK_GRAFT_KEYS` (hex, comma-separated). An image built
/// without it trusts no key and refuses every graft.
pub fn built_in_keys() -> graft_control::TrustedKeys {
    graft_control::TrustedKeys::from_hex(option_env!("ROOTSTOCK_GRAFT_KEYS").unwrap_or(""))
}
