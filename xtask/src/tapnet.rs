//! `--net tap`: a guest on a tap device inside a network namespace of its
//! own, its ports reached from the host's loopback through a relay.
//!
//! Why: QEMU's user network accepts forwarded connections with a listen
//! backlog of 1, so a burst of connections (a browser, `wrk -c 256`,
//! `redis-benchmark`'s 50 clients) waits out SYN retransmissions of one
//! second and more, and looks like a slow image. A tap device has no such
//! queue.
//!
//! What it does, as root (`ip` from iproute2 and `/dev/net/tun` needed):
//! 1. `ip netns add rootstock-PID`; in it a tap `rs0` with 10.0.2.2/24 (the
//!    gateway address QEMU's user network gives, so images need no
//!    `ip=`/`gw=`: the guest keeps 10.0.2.15) and `lo`, both up;
//! 2. QEMU runs inside the namespace (`ip netns exec`) with
//!    `-netdev tap,ifname=rs0`;
//! 3. each forwarded port is a listener on the host's 127.0.0.1 whose
//!    connections are relayed to 10.0.2.15:PORT by a thread that has
//!    entered the namespace (`setns`), so the connections to the guest are
//!    made from inside it.
//!
//! The namespace holds nothing but `lo` and the tap: no traffic from the
//! guest can leave it, and the host reaches the guest only through the
//! relay. Dropping the [`TapNet`] deletes the namespace (and the tap in
//! it); a namespace left by a killed run is removed with `ip netns del`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sched::{CloneFlags, setns};

/// The tap device inside the namespace.
pub const TAP: &str = "rs0";
/// The namespace side of the tap (the guest's default gateway).
pub const HOST_SIDE: &str = "10.0.2.2/24";
/// The guest's address (the images' default).
pub const GUEST: [u8; 4] = [10, 0, 2, 15];

/// A network namespace with a tap in it; deleted on drop.
pub struct TapNet {
    name: String,
    connector: mpsc::Sender<(u16, mpsc::Sender<std::io::Result<TcpStream>>)>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// What `--net tap` needs, for a user who lacks it.
pub const NEEDS: &str = "--net tap needs root (it creates a network namespace and a tap \
     device: `ip netns add`, `ip tuntap add`), iproute2's `ip` and /dev/net/tun; run it with \
     sudo, or use the default --net user (whose forwarded ports accept one connection at a time)";

impl TapNet {
    /// Creates the namespace and its tap, or explains what is missing.
    pub fn create() -> anyhow::Result<TapNet> {
        if !is_root() {
            bail!("{NEEDS}");
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            bail!("no /dev/net/tun: {NEEDS}");
        }
        let name = format!("rootstock-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name]).with_context(|| NEEDS.to_string())?;
        let net = TapNet {
            connector: spawn_connector(&name)?,
            name,
        };
        let n = net.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", n, "addr", "add", HOST_SIDE, "dev", TAP])?;
        ip(&["-n", n, "link", "set", TAP, "up"])?;
        Ok(net)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `command` run inside the namespace (`ip netns exec NAME ...`).
    pub fn wrap(&self, command: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped.args(["netns", "exec", &self.name]);
        wrapped.arg(command.get_program());
        wrapped.args(command.get_args());
        wrapped.stdin(Stdio::null());
        wrapped
    }

    /// Relays connections to 127.0.0.1:`host` to the guest's `guest` port,
    /// until the process exits. Returns the address listened on.
    pub fn forward(&self, host: u16, guest: u16) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(("127.0.0.1", host))
            .with_context(|| format!("cannot listen on 127.0.0.1:{host}"))?;
        let addr = listener.local_addr()?;
        let connector = self.connector.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (reply, answer) = mpsc::channel();
                if connector.send((guest, reply)).is_err() {
                    break;
                }
                match answer.recv() {
                    Ok(Ok(server)) => relay(client, server),
                    _ => drop(client),
                }
            }
        });
        Ok(addr)
    }
}

/// The thread that makes connections from inside the namespace.
fn spawn_connector(
    name: &str,
) -> anyhow::Result<mpsc::Sender<(u16, mpsc::Sender<std::io::Result<TcpStream>>)>> {
    let path = format!("/var/run/netns/{name}");
    let namespace = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    let (requests, incoming) = mpsc::channel::<(u16, mpsc::Sender<std::io::Result<TcpStream>>)>();
    let (entered, ok) = mpsc::channel();
    std::thread::spawn(move || {
        // setns affects this thread only: sockets it makes live in the
        // namespace, and stay there when other threads use them.
        let result = setns(&namespace, CloneFlags::CLONE_NEWNET);
        let _ = entered.send(result);
        if result.is_err() {
            return;
        }
        for (port, reply) in incoming {
            let addr = SocketAddr::from((GUEST, port));
            let _ = reply.send(TcpStream::connect_timeout(&addr, Duration::from_secs(10)));
        }
    });
    ok.recv()
        .context("the namespace thread died")?
        .context("setns into the namespace")?;
    Ok(requests)
}

/// Copies both ways between two connections, each direction in its thread.
fn relay(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        pipe(c, s);
        pipe(server, client);
    }
}

impl Drop for TapNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
