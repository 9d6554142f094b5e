//! Long-running guests for the network tests: boot an image with a host
//! port forwarded to it, wait until it says it is ready, talk to it, stop it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Qemu;

/// How long an image may take to print its ready line (TCG, loaded host).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A free TCP port on 127.0.0.1 (free when asked; QEMU binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

/// A running guest; killed on drop.
pub struct Guest {
    child: Child,
    console: Arc<Mutex<String>>,
    /// Host address forwarded to the guest's port.
    pub addr: SocketAddr,
    /// Every forwarded guest port and its host address (`addr` first).
    pub forwards: Vec<(u16, SocketAddr)>,
}

impl Guest {
    /// Boots `image` with `append`, forwarding a free host port to
    /// `guest_port`, and waits for `ready` on the console.
    pub fn start(image: &str, append: &str, guest_port: u16, ready: &str) -> Guest {
        let mut qemu = Qemu::new(crate::image(image));
        qemu.append = append.to_string();
        Guest::start_qemu(qemu, guest_port, ready)
    }

    /// Like [`Guest::start`] with a prepared QEMU command line (its
    /// forwards are replaced).
    pub fn start_qemu(qemu: Qemu, guest_port: u16, ready: &str) -> Guest {
        Guest::start_ports(qemu, &[guest_port], ready)
    }

    /// Like [`Guest::start_qemu`], forwarding a free host port to each of
    /// `guest_ports` ([`Guest::addr_of`] tells where each went).
    pub fn start_ports(mut qemu: Qemu, guest_ports: &[u16], ready: &str) -> Guest {
        let forwards: Vec<(u16, SocketAddr)> = guest_ports
            .iter()
            .map(|&guest| (guest, SocketAddr::from(([127, 0, 0, 1], free_port()))))
            .collect();
        qemu.forwards = forwards.iter().map(|(g, h)| (h.port(), *g)).collect();
        Guest::spawn(qemu.command().expect("QEMU command"), forwards, ready)
    }

    /// Like [`Guest::start_ports`] on `tap`'s tap device (`--net tap`): QEMU
    /// inside its namespace, each guest port relayed from a free host port.
    pub fn start_on_tap(
        mut qemu: Qemu,
        guest_ports: &[u16],
        ready: &str,
        tap: &xtask::tapnet::TapNet,
    ) -> Guest {
        let forwards: Vec<(u16, SocketAddr)> = guest_ports
            .iter()
            .map(|&guest| {
                let addr = tap.forward(0, guest).expect("relay");
                (guest, addr)
            })
            .collect();
        qemu.tap = Some(xtask::tapnet::TAP.into());
        let command = tap.wrap(&qemu.command().expect("QEMU command"));
        Guest::spawn(command, forwards, ready)
    }

    fn spawn(
        mut command: std::process::Command,
        forwards: Vec<(u16, SocketAddr)>,
        ready: &str,
    ) -> Guest {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start qemu-system-x86_64 (run `cargo xtask setup`)");
        let console = crate::collect_lines([
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ]);
        let mut guest = Guest {
            child,
            console,
            addr: forwards[0].1,
            forwards,
        };
        let start = Instant::now();
        while !guest.console().contains(ready) {
            if let Ok(Some(status)) = guest.child.try_wait() {
                panic!(
                    "the guest exited ({status}) before {ready:?}:\n{}",
                    guest.console()
                );
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "no {ready:?} within {READY_TIMEOUT:?}:\n{}",
                    guest.console()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        guest
    }

    /// A TCP connection to the guest's (first) port, with a read time-out;
    /// a failure to connect panics with the console.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.console()));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }

    /// The host address forwarded to `guest_port`.
    pub fn addr_of(&self, guest_port: u16) -> SocketAddr {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded"))
    }

    /// A handle that reads the console later (for helpers that outlive a borrow).
    pub fn console_handle(&self) -> impl Fn() -> String + 'static {
        let console = self.console.clone();
        move || console.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until `done` holds; fails the test with the
    /// console, naming `what` it waited for, when it does not.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the guest printed so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time QEMU has used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("QEMU's /proc/PID/stat");
        // Fields after the command name (which is in parentheses).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Whether QEMU is still running (the image has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
