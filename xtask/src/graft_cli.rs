//! `cargo xtask graft …`: managing the grafts in a running image, in the
//! manner of `bpftool prog load/show`.
//!
//! Each subcommand but `new`, `points` and `key` is one request to the
//! image's graft control channel ([`crate::graft_client`]): `load` and
//! `replace` first build a graft crate given as a directory
//! ([`crate::grafts::build_crate`]), compile the module
//! to the images' machine code (Wasmtime's Cranelift, ahead of time) and
//! sign the artifact with the development key ([`crate::keys`]) under a
//! fresh sequence number. The
//! reply is printed for people ([`crate::graft_view`]) or, with `--json`, as
//! the image sent it. A refusal by the image prints `graft: refused: …` and
//! exits 1.
//!
//! Also here: the part of `cargo xtask run` that forwards the control port.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use graft_control::envelope::{Envelope, MAGIC};

use crate::graft_client::{self, Client, Reply};
use crate::graft_view::{self, View};

/// What `load` and `replace` grant unless `--grant` says otherwise: read the
/// call's context, use maps, counters, the clock and the log. Not granted by
/// default: `context-write`, `locks`, `buffers`.
pub const DEFAULT_GRANT: &str = "context,maps,counters,time,log";

/// Options shared by every `graft` subcommand.
#[derive(clap::Args, Debug)]
pub struct GraftArgs {
    #[command(subcommand)]
    pub command: GraftCmd,
    /// The image's graft control port [default: $ROOTSTOCK_CONTROL, else 127.0.0.1:7070].
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Print the image's JSON reply as received.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum GraftCmd {
    /// Create a graft crate on the SDK for a graft point: its entry function, constants and a host test.
    New {
        /// The crate's name.
        name: String,
        /// The graft point (see `graft points`).
        #[arg(long)]
        point: String,
        /// The crate's directory (must not exist) [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The graft points: kind, signature, context, result, capabilities, budget (markdown).
    Points,
    /// Sign a module with the development key and load it at a graft point.
    Load {
        /// The graft point (e.g. net.rx).
        point: String,
        /// A graft crate's directory (built for wasm32, release), a .wasm file, a sample's
        /// name (packet-filter: target/grafts/packet-filter.wasm, built if missing) or an
        /// envelope already signed (sent as it is).
        module: String,
        /// Capabilities to grant, comma-separated (the point may narrow them).
        #[arg(long, default_value = DEFAULT_GRANT)]
        grant: String,
        /// Load on probation: the image unloads the graft by itself unless
        /// `graft confirm <id>` arrives within this time (e.g. 30s, 2m).
        #[arg(long, value_name = "TIME", value_parser = confirm_time)]
        confirm: Option<u64>,
    },
    /// Keep a graft loaded with `load --confirm` (ends its probation).
    Confirm { graft: u32 },
    /// Replace a loaded graft with another module, at the same point.
    Replace {
        point: String,
        /// The id of the graft to replace (from `graft list`).
        graft: u32,
        /// A graft crate's directory, a .wasm file, a sample's name or a signed envelope.
        module: String,
        #[arg(long, default_value = DEFAULT_GRANT)]
        grant: String,
    },
    /// Unload a graft; the image revokes what it held.
    Unload { point: String, graft: u32 },
    /// The loaded grafts (id, point, bytes, calls, commits, aborts) and the graft points.
    List,
    /// Per graft: calls, commits, aborts by cause, fuel, latency histogram.
    Stats {
        /// Only this graft point.
        point: Option<String>,
    },
    /// The fault log: when, where, which graft, why, and what the image did.
    Log,
    /// The development public key (what images built here trust) and its file.
    Key,
}

/// Runs one `graft` subcommand; returns the exit status.
pub fn run(args: GraftArgs) -> anyhow::Result<i32> {
    let GraftArgs {
        command,
        addr,
        json,
    } = args;
    match command {
        GraftCmd::Key => return key(json),
        GraftCmd::Points => {
            print!("{}", crate::graft_new::table());
            return Ok(0);
        }
        GraftCmd::New { name, point, dir } => {
            let made = crate::graft_new::scaffold(&name, &point, dir.as_deref())?;
            println!("graft: created {} for {point}", made.display());
            println!("  cargo test --manifest-path {}/Cargo.toml", made.display());
            println!("  cargo xtask graft load {point} {}", made.display());
            return Ok(0);
        }
        _ => {}
    }
    // Sign before connecting: a bad file should not need a running image.
    let (view, request) = match command {
        GraftCmd::Load {
            point,
            module,
            grant,
            confirm,
        } => {
            let envelope = envelope_for(&point, &module, &grant)?;
            let command = match confirm {
                None => graft_control::Command::Load { point, envelope },
                Some(within_ms) => graft_control::Command::LoadConfirmed {
                    point,
                    envelope,
                    within_ms,
                },
            };
            (View::Load, command)
        }
        GraftCmd::Confirm { graft } => (View::Confirm, graft_control::Command::Confirm { graft }),
        GraftCmd::Replace {
            point,
            graft,
            module,
            grant,
        } => {
            let envelope = envelope_for(&point, &module, &grant)?;
            (
                View::Replace(graft),
                graft_control::Command::Replace {
                    point,
                    graft,
                    envelope,
                },
            )
        }
        GraftCmd::Unload { point, graft } => (
            View::Unload,
            graft_control::Command::Unload { point, graft },
        ),
        GraftCmd::List => (View::List, graft_control::Command::List),
        GraftCmd::Stats { point } => (View::Stats, graft_control::Command::Stats { point }),
        GraftCmd::Log => (View::Log, graft_control::Command::Log),
        GraftCmd::Key | GraftCmd::Points | GraftCmd::New { .. } => unreachable!("handled above"),
    };
    let addr = addr.unwrap_or_else(graft_client::default_addr);
    let reply = Client::connect(&addr)?.request(&request)?;
    Ok(print_reply(view, json, reply))
}

/// `--confirm`'s time (`30s`, `2m`, `1500ms`) in milliseconds, within
/// what the image accepts.
fn confirm_time(text: &str) -> Result<u64, String> {
    let time = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
    if (1..=graft_control::protocol::MAX_CONFIRM_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "between 1ms and {}s",
            graft_control::protocol::MAX_CONFIRM_MS / 1000
        ))
    }
}

/// Prints a reply; returns the exit status (1 for a refusal).
fn print_reply(view: View, json: bool, reply: Reply) -> i32 {
    match reply {
        Reply::Ok(text) if json => {
            println!("{text}");
            0
        }
        Reply::Ok(text) => {
            println!("{}", graft_view::render(view, &text));
            0
        }
        Reply::Err(message) => {
            eprintln!("graft: refused: {message}");
            1
        }
    }
}

fn key(json: bool) -> anyhow::Result<i32> {
    let path = crate::keys::key_path();
    let public = crate::keys::public_hex()?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "public": public, "file": path.display().to_string() })
        );
    } else {
        println!("public {public}");
        println!("file   {}", path.display());
    }
    Ok(0)
}

/// The envelope to send for `module` (see [`GraftCmd::Load`]) at `point`.
pub fn envelope_for(point: &str, module: &str, grant: &str) -> anyhow::Result<Vec<u8>> {
    let path = module_path(module)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(MAGIC) {
        let envelope =
            Envelope::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if envelope.point != point {
            bail!(
                "{} is sealed for graft point `{}`, not `{point}`",
                path.display(),
                envelope.point
            );
        }
        return Ok(bytes);
    }
    if !bytes.starts_with(b"\0asm") {
        bail!(
            "{} is neither a WebAssembly module (no \\0asm header) nor a signed envelope",
            path.display()
        );
    }
    let artifact = crate::keys::compile(&bytes)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    eprintln!(
        "graft: compiled {} ({} bytes of WebAssembly) to {} bytes of x86-64 code ({})",
        path.display(),
        bytes.len(),
        artifact.len(),
        graft_runtime::ENGINE
    );
    crate::keys::seal_compiled(point, grant, &artifact)
        .with_context(|| format!("cannot sign {}", path.display()))
}

/// Where `module` is: a graft crate's directory, built to its module; an
/// existing file; or a sample's name resolved to
/// `target/grafts/<name>.wasm` (the grafts are built if it is missing).
pub fn module_path(module: &str) -> anyhow::Result<PathBuf> {
    let given = Path::new(module);
    if given.is_dir() {
        return crate::grafts::build_crate(given);
    }
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let bare = !module.contains(['/', '\\']) && !module.is_empty();
    if !bare {
        bail!("no file {module}");
    }
    let stem = module.strip_suffix(".wasm").unwrap_or(module);
    let samples: Vec<String> = crate::grafts::crates()?
        .into_iter()
        .map(|(_, stem)| stem)
        .collect();
    let built = sample_path(stem);
    if !built.is_file() && samples.iter().any(|s| s == stem) {
        eprintln!("graft: building the sample grafts ({stem}.wasm is missing)");
        crate::grafts::build_modules()?;
    }
    if built.is_file() {
        return Ok(built);
    }
    bail!(
        "`{module}` is neither a file nor a sample graft; the samples are: {}",
        samples.join(", ")
    )
}

/// Where a sample graft's module is built.
pub fn sample_path(stem: &str) -> PathBuf {
    crate::root()
        .join("target/grafts")
        .join(format!("{stem}.wasm"))
}

/// What `cargo xtask run` does about the graft control port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlan {
    /// A forward to add, (host, guest).
    pub forward: Option<(u16, u16)>,
    /// A line for the user.
    pub note: Option<String>,
}

/// Decides the control forward for `image`, given the user's forwards and
/// whether a host port is free: host 7070 → guest 7070 unless the user
/// forwards the guest port already (then that is the address) or host 7070
/// is taken.
pub fn plan_control(
    image: &str,
    publish: &[(u16, u16)],
    no_control: bool,
    host_free: impl Fn(u16) -> bool,
) -> ControlPlan {
    let none = ControlPlan {
        forward: None,
        note: None,
    };
    let Some(guest) = crate::images::control_port(image) else {
        return none;
    };
    if no_control {
        return none;
    }
    let on = |host: u16| {
        let addr = format!("127.0.0.1:{host}");
        let hint = if addr == graft_client::DEFAULT_ADDR {
            "cargo xtask graft list".to_string()
        } else {
            format!("cargo xtask graft list --addr {addr}")
        };
        format!("run: graft control on {addr} ({hint})")
    };
    if let Some(&(host, _)) = publish.iter().find(|&&(_, g)| g == guest) {
        return ControlPlan {
            forward: None,
            note: Some(on(host)),
        };
    }
    let host = guest;
    let taken = if let Some(&(_, other)) = publish.iter().find(|&&(h, _)| h == host) {
        Some(format!(
            "host port {host} is forwarded to guest port {other}"
        ))
    } else if !host_free(host) {
        Some(format!("host port {host} is busy (another image running?)"))
    } else {
        None
    };
    match taken {
        Some(why) => ControlPlan {
            forward: None,
            note: Some(format!(
                "run: {why}; graft control not forwarded (add -p PORT:{guest} to choose a port)"
            )),
        },
        None => ControlPlan {
            forward: Some((host, guest)),
            note: Some(on(host)),
        },
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (where QEMU forwards from).
pub fn host_port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_forwards_the_control_port_unless_told_or_taken() {
        let free = |_| true;
        let plan = plan_control("http", &[(8080, 80)], false, free);
        assert_eq!(plan.forward, Some((7070, 7070)));
        assert_eq!(
            plan.note.as_deref(),
            Some("run: graft control on 127.0.0.1:7070 (cargo xtask graft list)")
        );
        assert_eq!(plan_control("hello", &[], false, free).forward, None);
        assert_eq!(
            plan_control("http", &[], true, free),
            ControlPlan {
                forward: None,
                note: None
            }
        );
        let mine = plan_control("http", &[(9000, 7070)], false, free);
        assert_eq!(mine.forward, None);
        assert!(mine.note.unwrap().contains("--addr 127.0.0.1:9000"));
        let clash = plan_control("kv", &[(7070, 6379)], false, free);
        assert_eq!(clash.forward, None);
        assert!(clash.note.unwrap().contains("forwarded to guest port 6379"));
        let busy = plan_control("kv", &[], false, |_| false);
        assert_eq!(busy.forward, None);
        assert!(busy.note.unwrap().contains("busy"));
    }

    #[test]
    fn modules_resolve_to_files_or_samples_with_a_list_when_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.wasm");
        std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(module_path(file.to_str().unwrap()).unwrap(), file);
        let error = format!("{:#}", module_path("no-such-graft").unwrap_err());
        assert!(error.contains("packet-filter"), "{error}");
        assert!(module_path("some/dir/none.wasm").is_err());
        assert!(sample_path("packet-filter").ends_with("target/grafts/packet-filter.wasm"));
    }

    #[test]
    fn only_modules_and_envelopes_for_the_same_point_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let error = format!(
            "{:#}",
            envelope_for("net.rx", text.to_str().unwrap(), "").unwrap_err()
        );
        assert!(error.contains("neither a WebAssembly module"), "{error}");
        let key = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([3; 32]));
        let sealed = crate::keys::seal_with(&key.sk, 5, "net.rx", "", b"\0asm\x01\0\0\0").unwrap();
        let file = dir.path().join("sealed.graft");
        std::fs::write(&file, &sealed).unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(envelope_for("net.rx", path, "log").unwrap(), sealed);
        let error = format!("{:#}", envelope_for("sched.pick", path, "").unwrap_err());
        assert!(error.contains("sealed for graft point `net.rx`"), "{error}");
    }

    #[test]
    fn a_directory_is_built_only_if_it_is_a_graft_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let error = format!("{:#}", module_path(path).unwrap_err());
        assert!(
            error.contains("not a graft crate (it has no Cargo.toml)"),
            "{error}"
        );
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        let error = format!("{:#}", envelope_for("net.rx", path, "").unwrap_err());
        assert!(
            error.contains("no library of crate-type \"cdylib\""),
            "{error}"
        );
        assert!(!dir.path().join("target").exists(), "nothing is built");
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        graft: GraftArgs,
    }

    fn parse(args: &[&str]) -> Result<GraftCmd, String> {
        use clap::Parser as _;
        let args = std::iter::once("graft").chain(args.iter().copied());
        Cli::try_parse_from(args)
            .map(|cli| cli.graft.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn graft_new_takes_a_name_a_point_and_maybe_a_directory() {
        let error = parse(&["new", "mine"]).unwrap_err();
        assert!(error.contains("--point <POINT>"), "{error}");
        assert!(parse(&["new", "--point", "net.rx"]).is_err());
        let GraftCmd::New { name, point, dir } =
            parse(&["new", "mine", "--point", "net.rx", "--dir", "/tmp/x"]).unwrap()
        else {
            panic!("not new")
        };
        assert_eq!((name.as_str(), point.as_str()), ("mine", "net.rx"));
        assert_eq!(dir, Some(PathBuf::from("/tmp/x")));
        let new = |point: &str| GraftArgs {
            command: GraftCmd::New {
                name: "mine".into(),
                point: point.into(),
                dir: Some(PathBuf::from("/nonexistent/mine")),
            },
            addr: None,
            json: false,
        };
        let error = format!("{:#}", run(new("net.tx")).unwrap_err());
        assert!(
            error.contains("the points are: net.rx, http.request"),
            "{error}"
        );
        assert!(run(new("net.rx")).is_err(), "no parent directory");
    }

    #[test]
    fn a_refusal_exits_1() {
        assert_eq!(print_reply(View::List, false, Reply::Err("no".into())), 1);
        assert_eq!(print_reply(View::List, true, Reply::Ok("{}".into())), 0);
    }
}
