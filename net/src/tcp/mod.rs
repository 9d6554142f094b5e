//! TCP: listeners that accept, streams that read and write.
//!
//! A smoltcp socket handles one connection, so a [`TcpListener`] keeps a
//! backlog of sockets in the LISTEN state on its port. When one of them
//! takes a connection, the runner replaces it before processing the next
//! frame (so a burst of SYNs finds listening sockets, up to the stack's
//! socket limit) and queues the connection for [`TcpListener::accept`].
//!
//! Streams implement the ecosystem's `embedded-io-async` traits (see
//! `io`), and the stack and listeners `edge-nal`'s connect, bind and
//! accept (see `nal`), so third-party `no_std` crates can use them.
//!
//! A [`TcpStream`] dropped by its owner is closed gracefully (FIN after the
//! data already written) and reaped by the runner when the close completes
//! or after a grace period.

mod io;
mod listener;
mod nal;
mod stream;

pub use io::{IoError, ReadHalf, WriteHalf};
pub use listener::TcpListener;
pub(crate) use listener::{Listener, sweep_listeners};
pub use stream::TcpStream;

use alloc::vec;

use smoltcp::socket::tcp;
use unikernel::time::Duration;

use crate::time::duration_to_smoltcp;

/// How long a dropped stream may take to close before it is reset.
pub(crate) const LINGER: Duration = Duration::from_secs(10);
/// How long `connect` waits for the handshake.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// Receive buffer (also the largest window advertised), bytes.
    pub rx_buffer: usize,
    /// Send buffer, bytes: a write waits while it is full.
    pub tx_buffer: usize,
    /// Listening sockets kept ready on a listener's port (listeners only).
    pub backlog: usize,
    /// Send small segments at once instead of waiting for ACKs (Nagle off).
    pub nodelay: bool,
    /// Delay before a bare ACK (so it can ride on the reply); `None`: ACK at once.
    pub ack_delay: Option<Duration>,
    /// Probe an idle peer this often (`None`: never).
    pub keep_alive: Option<Duration>,
    /// Reset the connection when the peer acknowledges nothing for this long.
    pub user_timeout: Option<Duration>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            rx_buffer: 8 * 1024,
            tx_buffer: 8 * 1024,
            backlog: 8,
            nodelay: true,
            ack_delay: Some(Duration::from_millis(10)),
            keep_alive: None,
            user_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl TcpOptions {
    pub(crate) fn socket(&self) -> tcp::Socket<'static> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.rx_buffer.max(64)]),
            tcp::SocketBuffer::new(vec![0; self.tx_buffer.max(64)]),
        );
        socket.set_nagle_enabled(!self.nodelay);
        socket.set_ack_delay(self.ack_delay.map(duration_to_smoltcp));
        socket.set_keep_alive(self.keep_alive.map(duration_to_smoltcp));
        socket.set_timeout(self.user_timeout.map(duration_to_smoltcp));
        socket
    }
}
