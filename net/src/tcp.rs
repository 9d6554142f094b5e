//! TCP: listeners that accept, streams that read and write.
//!
//! A smoltcp socket handles one connection, so a [`TcpListener`] keeps a
//! backlog of sockets in the LISTEN state on its port. When one of them
//! takes a connection, the runner replaces it before processing the next
//! frame (so a burst of SYNs finds listening sockets, up to the stack's
//! socket limit) and queues the connection for [`TcpListener::accept`].
//!
//! A [`TcpStream`] dropped by its owner is closed gracefully (FIN after the
//! data already written) and reaped by the runner when the close completes
//! or after a grace period.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::net::SocketAddrV4;
use core::task::{Context, Poll, Waker};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::IpAddress;
use unikernel::task;
use unikernel::time::{Duration, Instant};

use crate::error::{AcceptError, BindError, ConnectError, ReadError, WriteError};
use crate::stack::{Core, Stack};
use crate::time::{deadline, duration_to_smoltcp};

/// How long a dropped stream may take to close before it is reset.
const LINGER: Duration = Duration::from_secs(10);
/// How long `connect` waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    fn socket(&self) -> tcp::Socket<'static> {
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

/// A listener's sockets (kept in the stack's core).
pub(crate) struct Listener {
    port: u16,
    options: TcpOptions,
    /// Sockets in LISTEN or SYN-RECEIVED.
    pending: Vec<SocketHandle>,
    /// Established connections not yet accepted.
    ready: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

/// Moves established connections to their listener's ready queue and tops
/// up every listener's LISTEN sockets.
pub(crate) fn sweep_listeners(core: &mut Core) {
    for index in 0..core.listeners.len() {
        let Some(mut listener) = core.listeners[index].take() else {
            continue;
        };
        let mut listening = 0;
        let mut woke = false;
        let port = listener.port;
        listener.pending.retain(|&handle| {
            let socket = core.sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                State::Listen => {
                    listening += 1;
                    true
                }
                State::SynReceived => true,
                State::Established | State::CloseWait => {
                    listener.ready.push_back(handle);
                    woke = true;
                    false
                }
                _ => {
                    // Reset during the handshake: listen again.
                    socket.abort();
                    if socket.listen(port).is_ok() {
                        listening += 1;
                    }
                    true
                }
            }
        });
        while listening < listener.options.backlog && core.has_room() {
            let mut socket = listener.options.socket();
            if socket.listen(port).is_err() {
                break;
            }
            listener.pending.push(core.add_socket(socket));
            listening += 1;
        }
        if woke && let Some(waker) = listener.waker.take() {
            waker.wake();
        }
        core.listeners[index] = Some(listener);
    }
}

/// Accepts TCP connections on one port.
pub struct TcpListener {
    core: Rc<RefCell<Core>>,
    index: usize,
    port: u16,
    timeout: Option<Duration>,
}

impl TcpListener {
    /// Listens on `port` of every local address.
    pub fn bind(stack: &Stack, port: u16, options: TcpOptions) -> Result<TcpListener, BindError> {
        let mut core = stack.core.borrow_mut();
        let taken = core.listeners.iter().flatten().any(|l| l.port == port);
        if port == 0 || taken {
            return Err(BindError::InvalidPort);
        }
        let listener = Listener {
            port,
            options,
            pending: Vec::new(),
            ready: VecDeque::new(),
            waker: None,
        };
        let index = match core.listeners.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                core.listeners.push(None);
                core.listeners.len() - 1
            }
        };
        core.listeners[index] = Some(listener);
        sweep_listeners(&mut core);
        Ok(TcpListener {
            core: stack.core.clone(),
            index,
            port,
            timeout: None,
        })
    }

    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Makes [`Self::accept`] give up after `timeout` (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The next established connection.
    pub async fn accept(&self) -> Result<TcpStream, AcceptError> {
        let limit = self.timeout.map(|t| task::current_time().saturating_add(t));
        let handle = deadline(limit, poll_fn(|cx| self.poll_accept(cx)))
            .await
            .map_err(|_| AcceptError::TimedOut)?;
        Ok(TcpStream::new(self.core.clone(), handle))
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<SocketHandle> {
        let mut core = self.core.borrow_mut();
        let listener = core.listeners[self.index]
            .as_mut()
            .expect("a listener's slot stays while it lives");
        if let Some(handle) = listener.ready.pop_front() {
            core.stats.accepted += 1;
            // Its LISTEN socket was replaced already; room may have freed.
            return Poll::Ready(handle);
        }
        listener.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return;
        };
        let Some(listener) = core.listeners[self.index].take() else {
            return;
        };
        let give_up = task::current_time().saturating_add(LINGER);
        for handle in listener.pending.into_iter().chain(listener.ready) {
            let socket = core.sockets.get_mut::<tcp::Socket>(handle);
            if socket.state() == State::Listen {
                core.remove_socket(handle);
            } else {
                socket.abort();
                core.orphans.push((handle, give_up));
            }
        }
        core.kick();
    }
}

/// One TCP connection.
pub struct TcpStream {
    core: Rc<RefCell<Core>>,
    handle: SocketHandle,
    timeout: Option<Duration>,
    /// This side closed its sending half (a later CLOSED is not a reset).
    shut: bool,
}

impl TcpStream {
    fn new(core: Rc<RefCell<Core>>, handle: SocketHandle) -> TcpStream {
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

    fn deadline(&self) -> Option<Instant> {
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

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ReadError>> {
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

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, WriteError>> {
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
        let handle = self.handle;
        let core = &self.core;
        let result = deadline(
            self.deadline(),
            poll_fn(|cx| {
                let mut core = core.borrow_mut();
                let socket = core.sockets.get_mut::<tcp::Socket>(handle);
                if socket.send_queue() == 0 {
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
