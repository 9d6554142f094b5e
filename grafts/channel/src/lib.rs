//! The management channel of a grafted image: the line protocol of
//! `graft-control` carried over a TCP port ([`tcp`], feature `tcp`) or the
//! serial console ([`serial`]), each client a [`Session`] on the image's
//! [`graft_host::GraftHost`].
//!
//! It is a crate of its own so that an image links only what it uses: the
//! graft host and its policy adapters are needed by every grafted image
//! (and by the `graftbench` test image, which has no channel at all),
//! the TCP transport only by images with networking, which enable `tcp`;
//! an image on the serial console compiles no network stack for it.
//! [`Session`] is the part tests drive on the host: bytes in, response
//! lines out, independent of the transport.
//!
//! The channel does not depend on any graft point: its frames reach the
//! stack before `net.rx` runs (`net::management`), the TCP port bounds its
//! own sessions ([`tcp::Limits`]), and each transport runs the task that
//! unloads grafts whose confirmed load ran out of time ([`probation`]).
//!
//! What this crate must never do: let a client's bytes panic the image,
//! or hold the host borrowed across an `await`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod probation;
#[cfg(target_os = "none")]
pub mod serial;
pub mod session;
#[cfg(all(target_os = "none", feature = "tcp"))]
pub mod tcp;

pub use session::{Next, Session};
