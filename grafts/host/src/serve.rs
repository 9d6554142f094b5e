//! The management channel inside an image: a TCP port for images with
//! networking, the serial console for the others. Both run [`Session`]s
//! as tasks; a client's bytes are handled between two `await`s, with the
//! host borrowed only for that.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use net::{BindError, Stack, TcpListener, TcpOptions, TcpStream};
use unikernel::task;
use unikernel::time::Duration;

use crate::host::{GraftHost, Shared};
use crate::session::{Next, Session};

/// The image's clock, as the graft runtime reads it.
pub struct KernelClock;

impl grafts::Clock for KernelClock {
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

/// A silent client is disconnected after this.
const IDLE: Duration = Duration::from_secs(300);

/// Listens for management sessions on TCP `port` (one task per client).
pub fn spawn_tcp(host: &Shared, stack: &Stack, port: u16) -> Result<(), BindError> {
    let options = TcpOptions {
        rx_buffer: 16 * 1024,
        tx_buffer: 16 * 1024,
        backlog: 2,
        ..TcpOptions::default()
    };
    let listener = TcpListener::bind(stack, port, options)?;
    let host = host.clone();
    task::Builder::new()
        .name("graft-control")
        .spawn(async move {
            loop {
                let Ok(stream) = listener.accept().await else {
                    continue;
                };
                task::Builder::new()
                    .name("graft-session")
                    .spawn(tcp_session(host.clone(), stream));
            }
        });
    log::info!(target: "graft", "control channel on TCP port {port}");
    Ok(())
}

async fn tcp_session(host: Shared, mut stream: TcpStream) {
    let mut session = Session::new();
    let mut input = vec![0u8; 4096];
    let mut output = Vec::new();
    stream.set_timeout(Some(IDLE));
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

/// Runs a management session on the serial console (for images without
/// networking). Responses go to the console as lines of their own.
pub fn spawn_serial(host: &Shared) -> Result<(), unikernel::irq::IrqError> {
    let input = unikernel::SerialInput::open()?;
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
