//! A small JSON API written with picoserve, a third-party `no_std` async
//! web framework (axum's shape: a router, extractors, handlers), used as
//! published: Rootstock's sockets implement the traits it is built on.
//!
//! - `GET /` — `{"service":"picoapi","items":N}`;
//! - `GET /items/<id>` — the item, or 404 with `{"error":...}`;
//! - `POST /items` with `{"name":"...","qty":N}` — stores it, answers
//!   `{"id":ID,"name":...,"qty":N}`;
//! - `GET /sum/<a>/<b>` — `{"sum":A+B}` (two path parameters).
//!
//! The glue is in [`glue`]: a picoserve `Timer` on the kernel's timers and
//! a picoserve `Socket` that splits a `net::TcpStream` into the
//! `embedded-io-async` halves `net` provides. It prints
//! `picoapi: serving on ADDRESS:PORT` when ready (`port=N` moves it).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

#[cfg(target_os = "none")]
mod api;
#[cfg(target_os = "none")]
mod glue;

unikernel::image!(main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    api::run().await
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
