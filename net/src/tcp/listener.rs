//! Listening: a backlog of LISTEN sockets per port, topped up by the
//! runner, and the queue of established connections `accept` takes from.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use unikernel::task;
use unikernel::time::Duration;

use super::{LINGER, TcpOptions, TcpStream};
use crate::error::{AcceptError, BindError};
use crate::stack::{Core, Stack};
use crate::time::deadline;

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
