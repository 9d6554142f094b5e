//! The management channel inside an image: a TCP port for images with
//! networking, the serial console for the others. Both run [`Session`]s
//! as tasks; a client's bytes are handled between two `await`s, with the
//! host borrowed only for that.
//!
//! The TCP port is reachable by anyone who reaches the image, and its
//! frames bypass the receive policy (`net::management`), so it bounds
//! itself ([`Limits`]): at most `sessions` at once (a client past that is
//! told so and closed at once), and a session that sends nothing for
//! `idle` is closed. An idle flood therefore holds at most `sessions`
//! sockets, for at most `idle`, never the sockets that serve traffic.
//!
//! A third task, [`watch_confirmations`], unloads the grafts whose
//! confirmed load ran out of time.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::pin::pin;
use core::task::Poll;

use net::{BindError, Stack, TcpListener, TcpOptions, TcpStream};
use unikernel::task;
use unikernel::time::{Duration, Instant};

use crate::host::{GraftHost, Shared};
use crate::session::{Next, Session};

/// The image's clock, as the graft runtime reads it.
pub struct KernelClock;

impl graft_runtime::Clock for KernelClock {
    fn now_ns(&self) -> u64 {
        unikernel::arch::clock_now().as_nanos()
    }
}

/// A graft host on the kernel's clock, trusting the keys built in.
pub fn host() -> Shared {
    GraftHost::new(Rc::new(KernelClock), crate::built_in_keys()).share()
}

/// The control port an image's command line asks for: `control=off`, or
/// `control=PORT`; [`crate::CONTROL_PORT`] when it says nothing.
pub fn control_port(cmdline: &str) -> Result<Option<u16>, &'static str> {
    match unikernel::cmdline::setting(cmdline, "control") {
        None => Ok(Some(crate::CONTROL_PORT)),
        Some("off") => Ok(None),
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Ok(Some(port)),
            _ => Err("control= takes a port number or `off`"),
        },
    }
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
pub fn spawn_tcp(host: &Shared, stack: &Stack, port: u16, limits: Limits) -> Result<(), BindError> {
    let options = TcpOptions {
        rx_buffer: 16 * 1024,
        tx_buffer: 16 * 1024,
        backlog: 2,
        ..TcpOptions::default()
    };
    let listener = TcpListener::bind(stack, port, options)?;
    spawn_watcher(host);
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

fn spawn_watcher(host: &Shared) {
    task::Builder::new()
        .name("graft-confirm")
        .spawn(watch_confirmations(host.clone()));
}

/// Unloads grafts whose confirmed load ran out of time: sleeps until the
/// earliest deadline, or until a new probation begins.
pub async fn watch_confirmations(host: Shared) {
    loop {
        let next = host.borrow_mut().expire_unconfirmed();
        let mut sleep = pin!(next.map(|ns| task::sleep_until(Instant::from_nanos(ns))));
        let mut first = true;
        core::future::poll_fn(|cx| {
            if !first {
                // Woken: a deadline passed or a probation began.
                return Poll::Ready(());
            }
            first = false;
            host.borrow_mut().confirmations().watch(cx.waker());
            match sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(()),
                _ => Poll::Pending,
            }
        })
        .await;
    }
}

/// Runs a management session on the serial console (for images without
/// networking). Responses go to the console as lines of their own.
pub fn spawn_serial(host: &Shared) -> Result<(), unikernel::irq::IrqError> {
    let input = unikernel::SerialInput::open()?;
    spawn_watcher(host);
    let host = host.clone();
    task::Builder::new().name("graft-serial").spawn(async move {
        let mut session = Session::new();
        let mut bytes = vec![0u8; 1024];
        let mut output = Vec::new();
        loop {
            let n = input.read(&mut bytes).await;
            if session.feed(&mut host.borrow_mut(), &bytes[..n], &mut output) == Next::Close {
                session = Session::new();
            }
            if !output.is_empty() {
                unikernel::console::write_bytes(&output);
                output.clear();
            }
        }
    });
    log::info!(target: "graft", "control channel on the serial console");
    Ok(())
}
