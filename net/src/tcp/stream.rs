//! A connection: reads, writes, shutdown, and a graceful close on drop.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::future::poll_fn;
use core::net::SocketAddrV4;
use core::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::IpAddress;
use unikernel::task;
use unikernel::time::{Duration, Instant};

use super::{CONNECT_TIMEOUT, LINGER, TcpOptions};
use crate::error::{ConnectError, ReadError, WriteError};
use crate::stack::{Core, Stack};
use crate::time::{deadline, duration_to_smoltcp};

/// One TCP connection.
pub struct TcpStream {
    core: Rc<RefCell<Core>>,
    handle: SocketHandle,
    timeout: Option<Duration>,
    /// This side closed its sending half (a later CLOSED is not a reset).
    shut: bool,
}

impl TcpStream {
    pub(crate) fn new(core: Rc<RefCell<Core>>, handle: SocketHandle) -> TcpStream {
        TcpStream {
            core,
            handle,
            timeout: None,
            shut: false,
        }
    }

    /// Opens a connection to `remote`.
    pub async fn connect(
        stack: &Stack,
        remote: SocketAddrV4,
        options: TcpOptions,
    ) -> Result<TcpStream, ConnectError> {
        let handle = {
            let mut core = stack.core.borrow_mut();
            let local = core.ephemeral_port();
            let mut socket = options.socket();
            let endpoint = (IpAddress::Ipv4(*remote.ip()), remote.port());
            socket
                .connect(core.iface.context(), endpoint, local)
                .map_err(|_| ConnectError::Unaddressable)?;
            let handle = core.add_socket(socket);
            core.kick();
            handle
        };
        // Owned from here: an early return closes and reaps the socket.
        let stream = TcpStream::new(stack.core.clone(), handle);
        let limit = Some(task::current_time().saturating_add(CONNECT_TIMEOUT));
        let result = deadline(
            limit,
            poll_fn(|cx| {
                let mut core = stream.core.borrow_mut();
                let socket = core.sockets.get_mut::<tcp::Socket>(handle);
                match socket.state() {
                    State::SynSent | State::SynReceived => {
                        socket.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    State::Closed | State::TimeWait | State::Listen => {
                        Poll::Ready(Err(ConnectError::Refused))
                    }
                    _ => Poll::Ready(Ok(())),
                }
            }),
        )
        .await;
        match result {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::TimedOut),
        }
    }

    /// Makes reads and writes give up after `timeout` without progress.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| task::current_time().saturating_add(t))
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> Option<SocketAddrV4> {
        let core = self.core.borrow();
        let endpoint = core
            .sockets
            .get::<tcp::Socket>(self.handle)
            .remote_endpoint()?;
        let IpAddress::Ipv4(ip) = endpoint.addr;
        Some(SocketAddrV4::new(ip, endpoint.port))
    }

    /// Reads what has arrived into `buf` (waiting for at least one byte);
    /// `Ok(0)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        if buf.is_empty() {
            return Ok(0);
        }
        deadline(self.deadline(), poll_fn(|cx| self.poll_read(cx, buf)))
            .await
            .map_err(|_| ReadError::TimedOut)?
    }

    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, ReadError>> {
        let mut core = self.core.borrow_mut();
        let socket = core.sockets.get_mut::<tcp::Socket>(self.handle);
        if socket.can_recv() {
            // A window update is worth sending only if the window was small.
            let was_full = socket.recv_queue() * 2 >= socket.recv_capacity();
            let n = socket.recv_slice(buf).unwrap_or(0);
            if was_full {
                core.kick();
            }
            return Poll::Ready(Ok(n));
        }
        if !socket.may_recv() {
            return Poll::Ready(match socket.state() {
                State::Closed if !self.shut => Err(ReadError::Reset),
                _ => Ok(0),
            });
        }
        socket.register_recv_waker(cx.waker());
        Poll::Pending
    }

    /// Queues as much of `buf` as fits in the send buffer (waiting for room
    /// for at least one byte); returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        if buf.is_empty() {
            return Ok(0);
        }
        deadline(self.deadline(), poll_fn(|cx| self.poll_write(cx, buf)))
            .await
            .map_err(|_| WriteError::TimedOut)?
    }

    pub(super) fn poll_write(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        if self.shut {
            return Poll::Ready(Err(WriteError::Closed));
        }
        let mut core = self.core.borrow_mut();
        let socket = core.sockets.get_mut::<tcp::Socket>(self.handle);
        if socket.can_send() {
            let n = socket.send_slice(buf).unwrap_or(0);
            core.kick();
            return Poll::Ready(Ok(n));
        }
        if !socket.may_send() {
            return Poll::Ready(Err(WriteError::Reset));
        }
        socket.register_send_waker(cx.waker());
        Poll::Pending
    }

    /// Writes all of `buf`, waiting for room as needed.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until the peer has acknowledged everything written.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        self.wait_acknowledged().await
    }

    /// [`TcpStream::flush`] through a shared reference (for a split stream).
    pub(super) async fn wait_acknowledged(&self) -> Result<(), WriteError> {
        let handle = self.handle;
        let shut = self.shut;
        let core = &self.core;
        let result = deadline(
            self.deadline(),
            poll_fn(|cx| {
                let mut core = core.borrow_mut();
                let socket = core.sockets.get_mut::<tcp::Socket>(handle);
                if socket.send_queue() == 0 || (shut && socket.state() == State::Closed) {
                    Poll::Ready(Ok(()))
                } else if socket.state() == State::Closed {
                    Poll::Ready(Err(WriteError::Reset))
                } else {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
            }),
        )
        .await;
        result.map_err(|_| WriteError::TimedOut)?
    }

    /// Closes the sending half: the peer reads the end of the stream after
    /// the data already written. Reading still works.
    pub fn shutdown(&mut self) {
        self.shut = true;
        let mut core = self.core.borrow_mut();
        core.sockets.get_mut::<tcp::Socket>(self.handle).close();
        core.kick();
    }

    /// Waits until something can be read, or the stream has ended.
    pub(super) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut core = self.core.borrow_mut();
        let socket = core.sockets.get_mut::<tcp::Socket>(self.handle);
        if socket.can_recv() || !socket.may_recv() {
            return Poll::Ready(());
        }
        socket.register_recv_waker(cx.waker());
        Poll::Pending
    }

    /// [`TcpStream::abort`] for a stream still borrowed: later reads end,
    /// writes fail.
    pub(super) fn abort_in_place(&mut self) {
        self.shut = true;
        let mut core = self.core.borrow_mut();
        core.sockets.get_mut::<tcp::Socket>(self.handle).abort();
        core.kick();
    }

    /// Resets the connection at once (unsent data is discarded).
    pub fn abort(self) {
        self.core
            .borrow_mut()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .abort();
        // Drop orphans the (closed) socket; the runner sends the RST.
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return;
        };
        let socket = core.sockets.get_mut::<tcp::Socket>(self.handle);
        socket.close();
        socket.set_timeout(Some(duration_to_smoltcp(LINGER)));
        let give_up = task::current_time().saturating_add(LINGER);
        core.orphans.push((self.handle, give_up));
        core.kick();
    }
}
