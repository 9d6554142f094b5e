//! The graft runtime (not written yet).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
