//! `cargo xtask`: the one way in to building, running, testing and
//! measuring Rootstock images.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use xtask::qemu::{Accel, Machine, Outcome, Qemu};
use xtask::{images, setup};

#[derive(Parser)]
#[command(about = "Build, run, test and measure Rootstock images")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: rustup targets, QEMU and client tools (Debian packages).
    Setup,
    /// Build an image; prints the ELF's path and size.
    Build {
        /// The image (a crate under images/ or tests/images/).
        image: String,
        /// Optimised build (what the benchmarks measure).
        #[arg(long)]
        release: bool,
    },
    /// Build and boot an image under QEMU; the console is this terminal, the exit status the image's.
    Run {
        image: String,
        #[arg(long)]
        release: bool,
        /// auto: KVM only with hardware KVM (kvm_intel/kvm_amd), TCG otherwise.
        #[arg(long, value_enum, default_value = "auto")]
        accel: Accel,
        /// Guest memory (QEMU syntax: 32M, 1G).
        #[arg(long, default_value = "32M")]
        mem: String,
        /// Start QEMU's gdb stub and wait for a debugger.
        #[arg(long)]
        gdb: bool,
        /// Kernel command line (e.g. loglevel=debug).
        #[arg(long, default_value = "")]
        append: String,
        /// Forward a host TCP port to the guest: HOST:GUEST (repeatable).
        #[arg(short = 'p', long = "publish", value_parser = parse_forward)]
        publish: Vec<(u16, u16)>,
        /// Attach a raw disk image (created, 64 MiB, on first use).
        #[arg(long)]
        disk: Option<PathBuf>,
        /// Do not forward the graft control port (host 7070 → guest 7070 for
        /// http and kv, unless -p forwards guest port 7070 already).
        #[arg(long)]
        no_control: bool,
        /// user: QEMU's user network (no privileges; forwarded ports accept one
        /// connection at a time). tap: a tap device in a network namespace of
        /// its own, ports relayed from 127.0.0.1 (root; bursts of connections).
        #[arg(long, value_enum, default_value = "user")]
        net: NetKind,
        /// The QEMU machine: microvm (virtio-mmio) or q35 (virtio-pci).
        #[arg(long, value_enum, default_value = "microvm")]
        machine: Machine,
        /// Write the image's network traffic to FILE (pcap; QEMU's filter-dump).
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
    },
    /// Run every test: host unit tests and the integration tests that boot images.
    Test,
    /// Measure: sizes, boot time, graft overheads (reports in target/bench/).
    Bench {
        /// What to measure.
        #[arg(value_enum, required = true)]
        what: Vec<xtask::bench::What>,
        /// Boots per system for `boot`.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// auto: KVM only with hardware KVM; `soak` takes TCG for auto.
        #[arg(long, value_enum, default_value = "auto")]
        accel: Accel,
        /// How long `soak` runs.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Compile the graft modules to WebAssembly (always optimised; prints their paths).
    Grafts,
    /// Write grafts (new, points) and manage them in a running image (load, replace, unload, list, stats, log, key).
    ///
    /// Modules are signed with the development key (target/graft-keys/dev.key,
    /// or $ROOTSTOCK_GRAFT_KEY), which every image built by xtask trusts. The
    /// image is reached at 127.0.0.1:7070 (`cargo xtask run` forwards it), or
    /// --addr, or $ROOTSTOCK_CONTROL. `load` grants
    /// "context,maps,counters,time,log" unless --grant says otherwise.
    Graft(xtask::graft_cli::GraftArgs),
    /// Fuzz the parsers of untrusted bytes under AFL++ (coverage-guided; targets: the folders of fuzz/corpus/).
    ///
    /// `cargo xtask fuzz resp --seconds 60` runs one target; `--all` runs
    /// each; `--reproduce FILE` runs a saved crash once in the plain build.
    Fuzz(xtask::fuzz::FuzzArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum NetKind {
    User,
    Tap,
}

fn parse_forward(text: &str) -> Result<(u16, u16), String> {
    let (host, guest) = text
        .split_once(':')
        .ok_or("expected HOST:GUEST, e.g. 8080:80")?;
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number"))
    };
    Ok((port(host)?, port(guest)?))
}

fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(xtask::root());
    cargo
}

fn build(image: &str, release: bool) -> anyhow::Result<PathBuf> {
    setup::targets()?;
    let elf = images::build(&[image.to_string()], release, None)?.remove(0);
    let size = std::fs::metadata(&elf)?.len();
    let stripped = images::stripped_size(&elf).map(|s| format!(", {} KiB stripped", s / 1024));
    eprintln!(
        "image: {} ({} KiB{})",
        elf.display(),
        size / 1024,
        stripped.unwrap_or_default()
    );
    Ok(elf)
}

fn run(cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Setup => setup::all()
            .and_then(|()| xtask::fuzz::install())
            .map(|()| 0),
        Cmd::Build { image, release } => {
            let elf = build(&image, release)?;
            println!("{}", elf.display());
            Ok(0)
        }
        Cmd::Run {
            image,
            release,
            accel,
            mem,
            gdb,
            append,
            publish,
            disk,
            no_control,
            net,
            machine,
            pcap,
        } => {
            setup::tools(&["qemu-system-x86_64"])?;
            let elf = build(&image, release)?;
            let (accel, why) = accel.resolve();
            eprintln!("run: accel {} ({why})", accel.name());
            if let Some(disk) = &disk
                && !disk.exists()
            {
                xtask::qemu::create_disk(disk, 64 << 20)
                    .with_context(|| format!("could not create disk image {}", disk.display()))?;
                eprintln!("run: created disk {} (64 MiB)", disk.display());
            }
            let mut qemu = Qemu::new(&elf);
            qemu.accel = accel;
            qemu.memory = mem;
            qemu.append = append;
            qemu.forwards = publish.clone();
            let control = xtask::graft_cli::plan_control(
                &image,
                &publish,
                no_control,
                xtask::graft_cli::host_port_free,
            );
            qemu.forwards.extend(control.forward);
            qemu.disk = disk;
            qemu.gdb = gdb;
            qemu.machine = machine;
            eprintln!("run: machine {}", machine.name());
            if let Some(pcap) = &pcap {
                if qemu.forwards.is_empty() {
                    bail!("--pcap needs a network device: forward a port with -p HOST:GUEST");
                }
                eprintln!("run: writing network traffic to {}", pcap.display());
            }
            qemu.pcap = pcap;
            if gdb {
                eprintln!(
                    "run: waiting for gdb: gdb {} -ex 'target remote :1234'",
                    elf.display()
                );
            }
            for (host, guest) in &publish {
                eprintln!("run: guest port {guest} at http://localhost:{host}/");
            }
            if let Some(note) = control.note {
                eprintln!("{note}");
            }
            // Kept until QEMU exits: dropping it deletes the namespace.
            let mut tap = None;
            let mut command = qemu.command()?;
            if net == NetKind::Tap {
                let tapnet = xtask::tapnet::TapNet::create()?;
                for &(host, guest) in &qemu.forwards {
                    tapnet.forward(host, guest)?;
                }
                qemu.tap = Some(xtask::tapnet::TAP.into());
                command = tapnet.wrap(&qemu.command()?);
                eprintln!(
                    "run: network on tap {} in namespace {} (guest 10.0.2.15), ports relayed from 127.0.0.1",
                    xtask::tapnet::TAP,
                    tapnet.name()
                );
                tap = Some(tapnet);
            }
            let status = xtask::qemu::run_symbolized(command, &qemu.elf)?;
            drop(tap);
            let outcome = Outcome::from_qemu(status.code());
            if let Some(text) = outcome.explain() {
                eprintln!("run: {text}");
            }
            Ok(outcome.status())
        }
        Cmd::Test => {
            setup::all()?;
            eprintln!("test: [1/6] cargo fmt --all --check");
            if !cargo()
                .args(["fmt", "--all", "--check"])
                .status()?
                .success()
            {
                bail!("the code is not formatted: run `cargo fmt --all`");
            }
            eprintln!("test: [2/6] cargo clippy --workspace --all-targets -- -D warnings");
            let clippy = cargo()
                .args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
                .status()?;
            if !clippy.success() {
                bail!("clippy found problems (see its messages above)");
            }
            let all = images::all()?;
            eprintln!("test: [3/6] building grafts to WebAssembly");
            xtask::grafts::build_modules()?;
            eprintln!("test: [4/6] building images: {}", all.join(", "));
            images::build(&all, false, None)?;
            eprintln!(
                "test: [5/6] cargo test --workspace (host unit tests, then QEMU integration tests)"
            );
            let status = cargo().args(["test", "--workspace"]).status()?;
            if !status.success() {
                bail!("tests failed");
            }
            let seconds = xtask::fuzz::TEST_SECONDS;
            eprintln!("test: [6/6] cargo xtask fuzz --all --seconds {seconds}");
            xtask::fuzz::fuzz(&xtask::fuzz::targets()?, seconds)?;
            eprintln!("test: all passed");
            Ok(0)
        }
        Cmd::Bench {
            what,
            runs,
            accel,
            minutes,
        } => {
            use xtask::bench::{What, boot, size};
            setup::all()?;
            for what in what {
                match what {
                    What::Size => size::run()?,
                    What::Boot => boot::run(runs.max(1), accel)?,
                    What::Grafts => xtask::grafts::bench(accel)?,
                    What::Net => xtask::bench::net::run(accel)?,
                    What::Kv => xtask::bench::kv::run(runs.clamp(1, 3), accel)?,
                    What::Exits => xtask::bench::exits_only(accel)?,
                    What::Soak => xtask::bench::soak::run(minutes, accel)?,
                }
            }
            Ok(0)
        }
        Cmd::Graft(args) => xtask::graft_cli::run(args),
        Cmd::Fuzz(args) => xtask::fuzz::run(args),
        Cmd::Grafts => {
            for module in xtask::grafts::build_modules()? {
                println!("{}", module.display());
            }
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn grafts_takes_no_release_flag_since_grafts_are_always_optimised() {
        assert!(matches!(
            Cli::try_parse_from(["xtask", "grafts"]).map(|cli| cli.command),
            Ok(Cmd::Grafts)
        ));
        let error = Cli::try_parse_from(["xtask", "grafts", "--release"])
            .err()
            .expect("--release is refused");
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
