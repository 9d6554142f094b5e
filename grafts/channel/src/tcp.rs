//! The management channel on a TCP port, for images with networking.
//! Each client gets a [`Session`] in a task of its own; its bytes are
//! handled between two `await`s, with the host borrowed only for that.
//!
//! The port is reachable by anyone who reaches the image, and its frames
//! bypass the receive policy (`net::management`), so it bounds itself
//! ([`Limits`]): at most `sessions` at once (a client past that is told so
//! and closed at once), and a session that sends nothing for `idle` is
//! closed. An idle flood therefore holds at most `sessions` sockets, for
//! at most `idle`, never the sockets that serve traffic.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use net::{BindError, Stack, TcpListener, TcpOptions, TcpStream};
use unikernel::task;
use unikernel::time::Duration;

use graft_host::Shared;

use crate::session::{Next, Session};

/// The management channel's TCP port inside the guest, unless the command
/// line names another ([`control_port`]).
pub const CONTROL_PORT: u16 = 7070;

/// The control port an image's command line asks for: `control=off`, or
/// `control=PORT`; [`CONTROL_PORT`] when it says nothing.
pub fn control_port(cmdline: &str) -> Result<Option<u16>, &'static str> {
    match unikernel::cmdline::setting(cmdline, "control") {
        None => Ok(Some(CONTROL_PORT)),
        Some("off") => Ok(None),
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Ok(Some(port)),
            _ => Err("control= takes a port number or `off`"),
        },
    }
}

/// The control channel's settings on an image's command line: its port
/// ([`control_port`]) and its [`Limits`].
pub fn settings(cmdline: &str) -> Result<(Option<u16>, Limits), &'static str> {
    Ok((control_port(cmdline)?, Limits::from_cmdline(cmdline)?))
}

/// How much of the image the TCP control channel may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions at once; a client past them is refused and closed.
    pub sessions: usize,
    /// A session that sends nothing for this long is closed.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sessions: 4,
            idle: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The defaults, changed by `control-sessions=N` (1 to 64) and
    /// `control-idle=SECONDS` (1 to 3600) on the command line.
    pub fn from_cmdline(cmdline: &str) -> Result<Limits, &'static str> {
        let mut limits = Limits::default();
        for word in cmdline.split_ascii_whitespace() {
            if let Some(value) = word.strip_prefix("control-sessions=") {
                limits.sessions = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("control-sessions= takes a number from 1 to 64")?;
            } else if let Some(value) = word.strip_prefix("control-idle=") {
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or("control-idle= takes seconds from 1 to 3600")?;
                limits.idle = Duration::from_secs(seconds);
            }
        }
        Ok(limits)
    }
}

/// Listens for management sessions on TCP `port` (one task per client,
/// within `limits`).
pub fn spawn(host: &Shared, stack: &Stack, port: u16, limits: Limits) -> Result<(), BindError> {
    let options = TcpOptions {
        rx_buffer: 16 * 1024,
        tx_buffer: 16 * 1024,
        backlog: 2,
        ..TcpOptions::default()
    };
    let listener = TcpListener::bind(stack, port, options)?;
    crate::probation::spawn_watcher(host);
    let host = host.clone();
    let open = Rc::new(Cell::new(0usize));
    task::Builder::new()
        .name("graft-control")
        .spawn(async move {
            loop {
                let Ok(mut stream) = listener.accept().await else {
                    continue;
                };
                if open.get() >= limits.sessions {
                    // The reply fits the socket's empty send buffer: no wait.
                    let refusal = alloc::format!(
                        "err too many control sessions (at most {}); try again later\n",
                        limits.sessions
                    );
                    let _ = net::timeout(
                        Duration::from_millis(10),
                        stream.write_all(refusal.as_bytes()),
                    )
                    .await;
                    stream.shutdown();
                    continue;
                }
                open.set(open.get() + 1);
                let open = open.clone();
                let host = host.clone();
                task::Builder::new()
                    .name("graft-session")
                    .spawn(async move {
                        tcp_session(host, stream, limits.idle).await;
                        open.set(open.get() - 1);
                    });
            }
        });
    log::info!(
        target: "graft",
        "control channel on TCP port {port} (at most {} sessions, closed after {} s idle)",
        limits.sessions,
        limits.idle.as_secs()
    );
    Ok(())
}

async fn tcp_session(host: Shared, mut stream: TcpStream, idle: Duration) {
    let mut session = Session::new();
    let mut input = vec![0u8; 4096];
    let mut output = Vec::new();
    stream.set_timeout(Some(idle));
    loop {
        let n = match stream.read(&mut input).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let next = session.feed(&mut host.borrow_mut(), &input[..n], &mut output);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
        if next == Next::Close {
            break;
        }
    }
    stream.shutdown();
}
