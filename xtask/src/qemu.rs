//! Launching images under QEMU, one configuration for `run`, the tests and
//! the benchmarks: `-M microvm,acpi=off` by default (PVH boot; virtio-mmio
//! devices announced on the kernel command line) or `-M q35` (SeaBIOS's
//! PVH path; modern virtio-pci devices), COM1 on stdio, `isa-debug-exit`
//! for the exit status. `run` symbolizes the kernel's backtraces as they
//! pass; `--pcap` adds a `filter-dump` on the network device.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::bail;

/// Which accelerator to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM if the host has hardware KVM (kvm_intel/kvm_amd), TCG otherwise.
    Auto,
    /// Software emulation.
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

impl Accel {
    /// Resolves `Auto`; returns the choice and why.
    pub fn resolve(self) -> (Accel, &'static str) {
        match self {
            Accel::Auto if hardware_kvm() => (Accel::Kvm, "hardware KVM is available"),
            Accel::Auto => (Accel::Tcg, "no hardware KVM (kvm_intel/kvm_amd not loaded)"),
            other => (other, "forced"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            _ => "tcg",
        }
    }
}

/// Which QEMU machine to boot on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    /// `-M microvm,acpi=off`: no firmware, no PCI, virtio-mmio devices
    /// announced on the kernel command line.
    #[default]
    Microvm,
    /// `-M q35`: SeaBIOS boots the PVH ELF; virtio-pci devices (modern
    /// transport only) on PCI bus 0.
    Q35,
}

impl Machine {
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }

    fn qemu_machine(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm,acpi=off",
            Machine::Q35 => "q35",
        }
    }

    /// The QEMU device for a virtio device of `kind` (`net` or `blk`).
    fn virtio_device(self, kind: &str) -> String {
        match self {
            Machine::Microvm => format!("virtio-{kind}-device"),
            // No option ROM: iPXE would only slow SeaBIOS down.
            Machine::Q35 => format!("virtio-{kind}-pci,disable-legacy=on,romfile="),
        }
    }
}

/// Creates (or truncates to) an empty raw disk image of `bytes` bytes: a
/// sparse file, which is all a raw image is. No `qemu-img` needed: Debian's
/// QEMU 7.2 conflicts with the newer qemu-utils some machines carry, and
/// installing one removes the other.
pub fn create_disk(path: &Path, bytes: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path)?;
    file.set_len(bytes)
}

/// Whether the host has hardware KVM (not a software-nested one).
pub fn hardware_kvm() -> bool {
    let module =
        Path::new("/sys/module/kvm_intel").exists() || Path::new("/sys/module/kvm_amd").exists();
    module
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}

/// How an image ended, decoded from QEMU's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `main` returned this status.
    Exited(u8),
    /// Kernel panic (status 101).
    Panic,
    /// Unhandled CPU exception (status 102).
    Exception,
    /// QEMU exited without a status from the image (reset, triple fault).
    NoStatus,
    /// QEMU itself failed (bad arguments, killed).
    QemuFailed(Option<i32>),
}

impl Outcome {
    pub fn from_qemu(code: Option<i32>) -> Outcome {
        match code {
            Some(0) => Outcome::NoStatus,
            Some(c) if c & 1 == 1 && (1..=255).contains(&c) => match (c - 1) / 2 {
                101 => Outcome::Panic,
                102 => Outcome::Exception,
                status => Outcome::Exited(status as u8),
            },
            other => Outcome::QemuFailed(other),
        }
    }

    /// The status `cargo xtask run` exits with.
    pub fn status(self) -> i32 {
        match self {
            Outcome::Exited(s) => i32::from(s),
            Outcome::Panic => 101,
            Outcome::Exception => 102,
            Outcome::NoStatus => 103,
            Outcome::QemuFailed(_) => 104,
        }
    }

    /// A line for the user, if the outcome needs explaining.
    pub fn explain(self) -> Option<String> {
        match self {
            Outcome::Exited(_) => None,
            Outcome::Panic => {
                Some("the kernel panicked (status 101); see the message above".into())
            }
            Outcome::Exception => {
                Some("an unhandled CPU exception (status 102); see the report above".into())
            }
            Outcome::NoStatus => {
                Some("the VM reset or powered off without reporting a status (status 103)".into())
            }
            Outcome::QemuFailed(code) => Some(format!("QEMU failed (exit {code:?}; status 104)")),
        }
    }
}

/// A QEMU command line for one image.
#[derive(Clone, Debug)]
pub struct Qemu {
    pub elf: PathBuf,
    pub machine: Machine,
    pub accel: Accel,
    pub memory: String,
    pub append: String,
    /// (host port, guest port) TCP forwards; any forward adds a virtio-net device.
    pub forwards: Vec<(u16, u16)>,
    pub disk: Option<PathBuf>,
    /// Exit on guest reset (off for images that warm-reboot).
    pub no_reboot: bool,
    pub gdb: bool,
    /// `-icount shift=0`: the guest's TSC advances by one per instruction,
    /// and QMP's `query-replay` returns the instructions executed.
    pub icount: bool,
    /// A QMP socket (UNIX, server, no wait) at this path.
    pub qmp: Option<PathBuf>,
    /// Trace [`EXIT_EVENTS`] into this file (`-trace ... -D FILE`).
    pub trace: Option<PathBuf>,
    /// The network on this tap device instead of the user network
    /// (`forwards` are then the caller's: see `crate::tapnet`).
    pub tap: Option<String>,
    /// The gdb stub's TCP port on 127.0.0.1 (with `gdb`; QEMU's `-s` is 1234).
    pub gdb_port: u16,
    /// Write the network traffic to this pcap file (QEMU's `filter-dump`).
    pub pcap: Option<PathBuf>,
}

/// QEMU 7.2 trace events for what costs a VM exit under KVM: queue
/// notifications and interrupts, APIC/IOAPIC and virtio-mmio register
/// accesses, serial port writes.
pub const EXIT_EVENTS: [&str; 10] = [
    "virtio_queue_notify",
    "virtio_notify",
    "apic_local_deliver",
    "apic_mem_writel",
    "apic_mem_readl",
    "ioapic_mem_read",
    "ioapic_mem_write",
    "virtio_mmio_read",
    "virtio_mmio_write_offset",
    "serial_write",
];

impl Qemu {
    pub fn new(elf: impl Into<PathBuf>) -> Qemu {
        Qemu {
            elf: elf.into(),
            machine: Machine::default(),
            accel: Accel::Tcg,
            memory: "32M".into(),
            append: String::new(),
            forwards: Vec::new(),
            disk: None,
            no_reboot: true,
            gdb: false,
            icount: false,
            qmp: None,
            trace: None,
            tap: None,
            gdb_port: 1234,
            pcap: None,
        }
    }

    /// The `qemu-system-x86_64` command.
    pub fn command(&self) -> anyhow::Result<Command> {
        if !self.elf.exists() {
            bail!(
                "no image at {}; build it first (cargo xtask build)",
                self.elf.display()
            );
        }
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args([
            "-M",
            self.machine.qemu_machine(),
            "-nodefaults",
            "-no-user-config",
            "-nographic",
        ]);
        match self.accel {
            Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
            _ => qemu.args(["-accel", "tcg", "-cpu", "max"]),
        };
        qemu.args(["-m", &self.memory, "-serial", "stdio"]);
        qemu.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if self.no_reboot {
            qemu.arg("-no-reboot");
        }
        if let Some(tap) = &self.tap {
            qemu.args([
                "-netdev",
                &format!("tap,id=net0,ifname={tap},script=no,downscript=no"),
            ]);
            qemu.args(["-device", "virtio-net-device,netdev=net0"]);
        } else if !self.forwards.is_empty() {
            let forwards: String = self
                .forwards
                .iter()
                .map(|(host, guest)| format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"))
                .collect();
            qemu.args(["-netdev", &format!("user,id=net0{forwards}")]);
            qemu.args([
                "-device",
                &format!("{},netdev=net0", self.machine.virtio_device("net")),
            ]);
            if let Some(pcap) = &self.pcap {
                qemu.args([
                    "-object",
                    &format!("filter-dump,id=dump0,netdev=net0,file={}", pcap.display()),
                ]);
            }
        }
        if let Some(disk) = &self.disk {
            qemu.args([
                "-drive",
                &format!(
                    "if=none,id=disk0,file={},format=raw,cache=none",
                    disk.display()
                ),
            ]);
            qemu.args([
                "-device",
                &format!("{},drive=disk0", self.machine.virtio_device("blk")),
            ]);
        }
        if self.gdb {
            qemu.args(["-gdb", &format!("tcp:127.0.0.1:{}", self.gdb_port), "-S"]);
        }
        if self.icount {
            qemu.args(["-icount", "shift=0"]);
        }
        if let Some(path) = &self.qmp {
            qemu.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", path.display()));
        }
        if let Some(path) = &self.trace {
            for event in EXIT_EVENTS {
                qemu.args(["-trace", event]);
            }
            qemu.arg("-D").arg(path);
        }
        qemu.arg("-kernel").arg(&self.elf);
        if !self.append.is_empty() {
            qemu.args(["-append", &self.append]);
        }
        qemu.stdin(Stdio::null());
        Ok(qemu)
    }
}

/// Starts `qemu` with its console collected by a thread (stderr dropped):
/// the running QEMU, and the console it printed once it has ended.
pub fn spawn_collecting(
    qemu: &Qemu,
) -> anyhow::Result<(std::process::Child, std::thread::JoinHandle<String>)> {
    use std::io::Read;
    let mut child = qemu
        .command()?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start qemu-system-x86_64: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let console = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    Ok((child, console))
}

/// Runs `qemu` with its console on this terminal, symbolizing the kernel's
/// backtrace lines against the ELF as they pass (see [`crate::symbolize`]).
pub fn run_symbolized(
    mut command: Command,
    elf: &std::path::Path,
) -> anyhow::Result<std::process::ExitStatus> {
    use std::io::Read;
    let symbolizer = crate::symbolize::Symbolizer::new(elf)
        .map_err(|e| eprintln!("run: backtraces will not be symbolized: {e:#}"))
        .ok();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start qemu-system-x86_64: {e}"))?;
    let mut console = child.stdout.take().expect("piped stdout");
    let mut echo = crate::symbolize::Echo::new(std::io::stdout().lock(), symbolizer);
    let mut buffer = [0u8; 4096];
    loop {
        match console.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if echo.feed(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(child.wait()?)
}
