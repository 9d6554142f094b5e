//! `kv` with its graft control channel reachable too: the Redis port and
//! the graft control port forwarded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::Qemu;
use tests::guest::Guest;

/// A running `kv` with its Redis port and its graft control port; killed
/// on drop.
pub struct Controlled {
    guest: Guest,
    pub redis: SocketAddr,
    pub control: SocketAddr,
}

impl Controlled {
    /// Boots `elf` on `disk` and waits for `kv: ready`.
    pub fn boot(elf: &Path, disk: &Path) -> Controlled {
        let mut qemu = Qemu::new(elf);
        qemu.disk = Some(disk.to_path_buf());
        let guest = Guest::start_ports(qemu, &[6379, 7070], super::READY);
        Controlled {
            redis: guest.addr_of(6379),
            control: guest.addr_of(7070),
            guest,
        }
    }

    pub fn console(&self) -> String {
        self.guest.console()
    }

    /// `redis-cli -p PORT args...` (raw output).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.redis.port().to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli (apt-get install redis-tools)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// One number from `INFO`.
    pub fn info(&self, field: &str) -> u64 {
        let info = self.cli(&["INFO"]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO has no number {field}:\n{info}"))
    }

    /// SETs `count` distinct keys `fill:i` with `value_len`-byte values,
    /// pipelined on one connection; returns once every one is acknowledged.
    pub fn fill(&self, count: usize, value_len: usize) {
        let mut stream = TcpStream::connect(self.redis).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut wire = Vec::new();
        for i in 0..count {
            let key = format!("fill:{i}");
            let value = value_of(i, value_len);
            wire.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${value_len}\r\n",
                    key.len()
                )
                .as_bytes(),
            );
            wire.extend_from_slice(value.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || writer.write_all(&wire));
        let expected = b"+OK\r\n".repeat(count);
        let mut got = Vec::with_capacity(expected.len());
        let mut chunk = [0u8; 4096];
        while got.len() < expected.len() {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "kv closed the connection:\n{}", self.console());
            got.extend_from_slice(&chunk[..n]);
        }
        sender.join().unwrap().unwrap();
        assert!(got == expected, "not every SET was acknowledged");
    }
}

/// The value [`Controlled::fill`] gives key `fill:i`.
pub fn value_of(i: usize, len: usize) -> String {
    let stamp = format!("value {i} ");
    stamp.chars().cycle().take(len).collect()
}
