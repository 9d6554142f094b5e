//! The HTTP server of the `http` image, as a library so that its logic is
//! tested on the host (the image itself is `main.rs`).
//!
//! HTTP/1.1 with keep-alive and pipelining, `GET` and `HEAD` only, static
//! files embedded at build time ([`content`]) and a `/stats` JSON page
//! ([`stats`]). Requests are parsed once, by `httparse`, into a typed
//! [`request::Request`] or a rejection with its status ([`request`]):
//! malformed → 400, other methods → 405, oversized head → 431, oversized
//! body → 413; a client that stays silent is disconnected (408 if it was
//! mid-request). Responses always carry a correct `Content-Length`
//! ([`response`]). [`server`] runs one task per connection.
//!
//! The server must never panic on what a client sends, never buffer more
//! than its limits per connection, and never keep a silent client forever.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod content;
pub mod request;
pub mod response;
pub mod server;
pub mod stats;

pub use server::{Server, ServerConfig};
