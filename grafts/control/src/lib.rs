//! The graft management channel, independent of transport and runtime.
//!
//! A graft reaches a running image as a **signed envelope**
//! ([`envelope`]): the module's bytes, the graft point it is for and a
//! sequence number, signed with Ed25519 by a key the image was built to
//! trust. The image checks the envelope at the border (format, size, key,
//! signature, then the sequence number against [`replay::ReplayGuard`]) and
//! only then hands the module to the graft runtime; anything else is refused
//! with an error saying why, and nothing changes.
//!
//! Commands travel over a line protocol ([`protocol`]) that works the same
//! on a TCP port and on the serial console: one request line (and for
//! `load`/`replace` a counted binary body), one response line.
//!
//! This crate must never panic on untrusted bytes and never allocate without
//! a bound taken from its limits.

#![cfg_attr(not(any(test, feature = "sign")), no_std)]

extern crate alloc;

pub mod envelope;
pub mod protocol;
pub mod replay;

pub use envelope::{
    Envelope, EnvelopeError, MAX_ARTIFACT, MAX_ENGINE, MAX_POINT_NAME, TrustedKeys,
    valid_point_name,
};
pub use protocol::{Command, Decoder, ProtocolError, Response};
pub use replay::ReplayGuard;
