//! Rootstock networking: smoltcp on a network device, with an async socket
//! API for an image's tasks.
//!
//! This crate is everything above the device driver. The virtio-net
//! driver itself is not here: it lends DMA buffers to the device, which is
//! `unsafe`, so it lives in the kernel (`unikernel/src/arch/virtio_net.rs`:
//! finding the device, its queues and buffers, its interrupt line). This
//! crate forbids `unsafe` and sees the device only through the [`Nic`]
//! trait; [`virtio`] is the few lines that implement it for the kernel's
//! driver.
//!
//! Layers, bottom up:
//! - [`Nic`] ([`nic`]): the device as the stack sees it, frames lent in
//!   place plus an interrupt to wait on. On the target it is the kernel's
//!   virtio-net driver ([`virtio`]); on the host it is [`testing::Wire`],
//!   two devices joined back to back, which is how this crate is tested.
//! - [`RxPolicy`] ([`policy`]): what happens to each received frame before
//!   the stack sees it (pass, drop or answer directly). It is a policy in
//!   the Rootstock sense: a trait with a compiled-in default ([`PassAll`]),
//!   chosen per image as a type parameter. A grafted image wraps its policy
//!   in `graft_host::rx::GraftRx`, which runs the `net.rx` graft point's
//!   handlers first (the `http` image does). Traffic for the image's
//!   control port is classified before any policy ([`management`]) and
//!   never shown to it, so no policy or graft can cut the operator off.
//! - [`Stack`] ([`stack`]): one smoltcp interface (IPv4, ARP, ICMP echo,
//!   TCP, UDP, static or DHCP configuration from [`Config`]) and its runner
//!   task, which sleeps until the device interrupts, a socket has something
//!   to send, or a protocol timer is due: an idle image halts the CPU.
//! - Sockets ([`TcpListener`], [`TcpStream`], [`UdpSocket`], [`ping`]):
//!   futures that wait on smoltcp's wakers, with back-pressure (a write
//!   waits for buffer space) and optional time-outs; every failure is a
//!   small error enum, never a panic.
//!
//! What this crate must never do: touch memory or devices unsafely (it
//! forbids `unsafe`; the driver's hazards stay in `unikernel::arch`), read a
//! clock deep inside (time comes from the runner, once per poll), or let a
//! malformed frame, a vanished peer or a full buffer panic the image.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod config;
pub mod error;
pub mod icmp;
pub mod management;
pub mod nic;
pub mod policy;
mod port;
pub mod stack;
pub mod tcp;
pub mod testing;
mod time;
pub mod udp;
#[cfg(target_os = "none")]
pub mod virtio;

pub use config::{Config, Ipv4Config};
pub use error::{AcceptError, BindError, ConnectError, PingError, ReadError, UdpError, WriteError};
pub use icmp::ping;
pub use nic::Nic;
pub use policy::{DropPorts, NoPing, PassAll, RxPolicy, Verdict};
pub use stack::{NetStats, Stack};
pub use tcp::{IoError, ReadHalf, TcpListener, TcpOptions, TcpStream, WriteHalf};
pub use time::{TimedOut, timeout};
pub use udp::{UdpOptions, UdpSocket};

pub use core::net::{Ipv4Addr, SocketAddrV4};

#[cfg(target_os = "none")]
pub use virtio::{open, open_with};
