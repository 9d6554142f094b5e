//! What the `kv` tests share: booting the image on a disk (warm reboots
//! allowed), waiting for its n-th `kv: ready`, and driving it with Debian's
//! `redis-cli`.

#![allow(dead_code)] // Each test file uses its own part of this.

pub mod control;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tests::Qemu;
use tests::guest::Guest;

pub const READY: &str = "kv: ready on";
const REBOOT_TIMEOUT: Duration = Duration::from_secs(90);

static FAULT_BUILD: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The `kv` image as `cargo xtask test` builds it (no fault injection).
pub fn image() -> PathBuf {
    tests::image("kv")
}

/// `kv` with the `fault-injection` feature (`DEBUG PANIC`, `DEBUG
/// WILDWRITE`), built once into its own target directory: test images
/// only, never what `cargo xtask build` makes.
pub fn fault_image() -> PathBuf {
    let mut built = FAULT_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return path.clone();
    }
    let dir = xtask::root().join("target/kv-fault");
    let path = xtask::images::build_with_features(
        &["kv".to_string()],
        false,
        Some(&dir),
        &["fault-injection"],
    )
    .unwrap_or_else(|e| panic!("building kv with fault injection: {e:#}"))
    .remove(0);
    *built = Some(path.clone());
    path
}

/// A new, empty 64 MiB raw disk named after the test.
pub fn fresh_disk(name: &str) -> PathBuf {
    let dir = xtask::root().join("target/kv-disks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.img"));
    let _ = std::fs::remove_file(&path);
    xtask::qemu::create_disk(&path, 64 << 20).expect("cannot create the disk image");
    path
}

/// A running `kv`.
pub struct Kv {
    pub guest: Guest,
}

impl Kv {
    /// Boots `elf` on `disk` without `-no-reboot`: a crash warm-reboots.
    pub fn boot(elf: &Path, disk: &Path, append: &str) -> Kv {
        let mut qemu = Qemu::new(elf);
        qemu.disk = Some(disk.to_path_buf());
        qemu.no_reboot = false;
        qemu.append = append.to_string();
        Kv {
            guest: Guest::start_qemu(qemu, 6379, READY),
        }
    }

    pub fn port(&self) -> u16 {
        self.guest.addr.port()
    }

    pub fn console(&self) -> String {
        self.guest.console()
    }

    /// Waits until the console shows `kv: ready` `count` times in all
    /// (the first boot and then one per warm reboot).
    pub fn wait_ready(&mut self, count: usize) {
        let start = Instant::now();
        while self.console().matches(READY).count() < count {
            assert!(
                self.guest.is_running(),
                "QEMU exited waiting for ready #{count}:\n{}",
                self.console()
            );
            assert!(
                start.elapsed() < REBOOT_TIMEOUT,
                "no ready #{count} within {REBOOT_TIMEOUT:?}:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for QEMU to end (after `SHUTDOWN`).
    pub fn wait_exit(&mut self) {
        let start = Instant::now();
        while self.guest.is_running() {
            assert!(
                start.elapsed() < REBOOT_TIMEOUT,
                "QEMU still running:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis-cli -p PORT args...` (raw output, as when not on a terminal).
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_with(&[], args, None)
    }

    /// `redis-cli --no-raw ...`: replies typed as `(integer) 1`, `(nil)`.
    pub fn cli_typed(&self, args: &[&str]) -> String {
        self.cli_with(&["--no-raw"], args, None)
    }

    /// `redis-cli` with extra options and, optionally, bytes on stdin.
    pub fn cli_with(&self, options: &[&str], args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port().to_string()])
            .args(options)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run redis-cli (apt-get install redis-tools)");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.map(<[u8]>::to_vec).unwrap_or_default();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let output = child.wait_with_output().expect("redis-cli output");
        let _ = writer.join();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    }

    /// Sends a command that crashes the kernel on purpose, and returns once
    /// the image is ready again (its `ready_count`-th ready line). The
    /// client is not waited for: it only learns that the connection died
    /// after TCP gives up on it, seconds after the image is back.
    pub fn crash(&mut self, fault: &str, ready_count: usize) {
        let mut client = Command::new("redis-cli")
            .args(["-p", &self.port().to_string(), "DEBUG", fault])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-cli");
        self.wait_ready(ready_count);
        if let Ok(Some(_)) = client.try_wait() {
            let mut said = String::new();
            let _ = std::io::Read::read_to_string(&mut client.stdout.take().unwrap(), &mut said);
            assert!(!said.contains("ERR"), "DEBUG {fault} answered {said:?}");
        }
        let _ = client.kill();
        let _ = client.wait();
    }

    /// Sends `commands` with `redis-cli --pipe` (one pipelined stream) and
    /// returns how many replies came back and how many were errors.
    pub fn pipe(&self, commands: &[Vec<String>]) -> (usize, usize) {
        let mut wire = Vec::new();
        for command in commands {
            wire.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
            for arg in command {
                wire.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
            }
        }
        let out = self.cli_with(&["--pipe"], &[], Some(&wire));
        let counts = out
            .lines()
            .find_map(|l| l.strip_prefix("errors: "))
            .and_then(|rest| {
                let (errors, replies) = rest.split_once(", replies: ")?;
                Some((replies.trim().parse().ok()?, errors.trim().parse().ok()?))
            });
        counts.unwrap_or_else(|| panic!("redis-cli --pipe said:\n{out}\n{}", self.console()))
    }

    /// Sets `key:0` to `key:{n-1}` to `value(i)` in one pipelined stream
    /// ([`Kv::pipe`]); returns the replies and the errors.
    pub fn set_keys(&self, n: usize, value: impl Fn(usize) -> String) -> (usize, usize) {
        let commands: Vec<Vec<String>> = (0..n)
            .map(|i| vec!["SET".into(), format!("key:{i}"), value(i)])
            .collect();
        self.pipe(&commands)
    }

    /// The values of `key:0` to `key:{n-1}`, in key order (one `MGET`).
    pub fn get_keys(&self, n: usize) -> Vec<String> {
        let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        self.cli(&args).lines().map(str::to_string).collect()
    }
}
