//! UDP sockets.

use alloc::rc::Rc;
use alloc::vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::net::SocketAddrV4;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, SendError};
use smoltcp::wire::{IpAddress, IpEndpoint};
use unikernel::task;
use unikernel::time::Duration;

use crate::error::{BindError, UdpError};
use crate::stack::{Core, Stack};
use crate::time::deadline;

/// Buffer sizes of a UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOptions {
    /// Datagrams each direction can queue.
    pub packets: usize,
    /// Payload bytes each direction can queue.
    pub bytes: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            packets: 16,
            bytes: 16 * 1024,
        }
    }
}

fn buffer(options: UdpOptions) -> PacketBuffer<'static> {
    PacketBuffer::new(
        vec![PacketMetadata::EMPTY; options.packets.max(1)],
        vec![0; options.bytes.max(64)],
    )
}

/// A UDP socket bound to a local port.
pub struct UdpSocket {
    core: Rc<RefCell<Core>>,
    handle: SocketHandle,
    timeout: Option<Duration>,
}

impl UdpSocket {
    /// Binds `port` on every local address.
    pub fn bind(stack: &Stack, port: u16, options: UdpOptions) -> Result<UdpSocket, BindError> {
        let mut core = stack.core.borrow_mut();
        let taken = core
            .sockets
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Udp(udp) => Some(udp.endpoint().port),
                _ => None,
            })
            .any(|p| p == port);
        if taken {
            return Err(BindError::InvalidPort);
        }
        let mut socket = udp::Socket::new(buffer(options), buffer(options));
        socket.bind(port).map_err(|_| BindError::InvalidPort)?;
        let handle = core.add_socket(socket);
        Ok(UdpSocket {
            core: stack.core.clone(),
            handle,
            timeout: None,
        })
    }

    /// Makes sends and receives give up after `timeout`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends one datagram to `to`, waiting for buffer space.
    pub async fn send_to(&mut self, data: &[u8], to: SocketAddrV4) -> Result<(), UdpError> {
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        self.within_timeout(|cx| {
            let mut core = self.core.borrow_mut();
            let socket = core.sockets.get_mut::<udp::Socket>(self.handle);
            if data.len() > socket.payload_send_capacity() {
                return Poll::Ready(Err(UdpError::TooLarge));
            }
            match socket.send_slice(data, endpoint) {
                Ok(()) => {
                    core.kick();
                    Poll::Ready(Ok(()))
                }
                Err(SendError::Unaddressable) => Poll::Ready(Err(UdpError::Unaddressable)),
                Err(SendError::BufferFull) => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?
    }

    /// Receives one datagram into `buf` (cut to its length); returns the
    /// datagram's full length and its sender.
    pub async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), UdpError> {
        self.within_timeout(|cx| {
            let mut core = self.core.borrow_mut();
            let socket = core.sockets.get_mut::<udp::Socket>(self.handle);
            match socket.recv() {
                Ok((data, meta)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                    Poll::Ready((data.len(), SocketAddrV4::new(ip, meta.endpoint.port)))
                }
                Err(_) => {
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Polls `poll` until it is ready, or until the socket's time-out
    /// passes.
    async fn within_timeout<T>(
        &self,
        poll: impl FnMut(&mut core::task::Context<'_>) -> Poll<T>,
    ) -> Result<T, UdpError> {
        let limit = self.timeout.map(|t| task::current_time().saturating_add(t));
        deadline(limit, poll_fn(poll))
            .await
            .map_err(|_| UdpError::TimedOut)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if let Ok(mut core) = self.core.try_borrow_mut() {
            // Datagrams already accepted by `send_to` still go out.
            let give_up = task::current_time().saturating_add(Duration::from_secs(1));
            core.orphans.push((self.handle, give_up));
            core.kick();
        }
    }
}
