//! The harness for integration tests that boot images under QEMU (TCG).
//!
//! Images are the ELFs `cargo xtask test` builds before running the tests
//! (`target/x86_64-unknown-none/debug/<image>`). When a test runs without
//! them (plain `cargo test --workspace`), the harness builds them itself
//! into `target/itest`: a separate target directory, so the nested cargo
//! never waits on the lock the outer `cargo test` holds.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use xtask::qemu::{Outcome, Qemu};

pub mod grafts;
pub mod guest;

/// Longest a test image may run.
pub const TIMEOUT: Duration = Duration::from_secs(90);

static BUILD: Mutex<()> = Mutex::new(());

/// The ELF of `image`, built if needed.
pub fn image(name: &str) -> PathBuf {
    let prebuilt = xtask::images::elf_path(name, false, None);
    if prebuilt.exists() {
        return prebuilt;
    }
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = xtask::root().join("target/itest");
    xtask::images::build(&[name.to_string()], false, Some(&dir))
        .unwrap_or_else(|e| panic!("cannot build image {name}: {e:#}"))
        .remove(0)
}

/// The optimised (release) ELF of `image`, built into `target/itest`
/// (what `cargo xtask run --release` and the benchmarks boot).
pub fn release_image(name: &str) -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = xtask::root().join("target/itest");
    xtask::images::build(&[name.to_string()], true, Some(&dir))
        .unwrap_or_else(|e| panic!("cannot build image {name} (release): {e:#}"))
        .remove(0)
}

/// What a finished run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub output: String,
    pub outcome: Outcome,
}

impl Run {
    /// Panics with the whole console output unless `text` appears in it.
    pub fn expect(&self, text: &str) -> &Self {
        assert!(
            self.output.contains(text),
            "expected {text:?} in the console output:\n{}",
            self.output
        );
        self
    }
}

/// The console of a guest that keeps running: every line `streams` print
/// (QEMU's stdout and stderr, say) appended as it arrives, by one thread
/// per stream.
pub fn collect_lines(
    streams: impl IntoIterator<Item = Box<dyn Read + Send>>,
) -> std::sync::Arc<Mutex<String>> {
    use std::io::BufRead;
    let console = std::sync::Arc::new(Mutex::new(String::new()));
    for stream in streams {
        let console = console.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let mut console = console.lock().unwrap_or_else(|e| e.into_inner());
                console.push_str(&line);
                console.push('\n');
            }
        });
    }
    console
}

/// Starts `qemu` with its console (stdout) and its own messages (stderr)
/// piped to the test.
pub fn spawn_piped(qemu: &Qemu) -> std::process::Child {
    qemu.command()
        .expect("QEMU command")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start qemu-system-x86_64 (run `cargo xtask setup`)")
}

/// Boots `qemu` to completion (or [`TIMEOUT`], which fails the test).
pub fn run(qemu: &Qemu) -> Run {
    let mut child = spawn_piped(qemu);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for QEMU") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let output = reader.join().unwrap_or_default();
            panic!("QEMU timed out after {TIMEOUT:?}; console output:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut errors = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut errors);
    }
    let mut output = reader.join().unwrap_or_default();
    if output.contains(xtask::symbolize::MARKER) {
        match xtask::symbolize::Symbolizer::new(&qemu.elf) {
            Ok(symbolizer) => output = symbolizer.annotate(&output),
            Err(e) => output.push_str(&format!("\n[not symbolized: {e:#}]\n")),
        }
    }
    if !errors.is_empty() {
        output.push_str("\n[qemu stderr]\n");
        output.push_str(&errors);
    }
    Run {
        output,
        outcome: Outcome::from_qemu(status.code()),
    }
}

/// Boots `image` with kernel command line `append`.
pub fn boot(image_name: &str, append: &str) -> Run {
    let mut qemu = Qemu::new(image(image_name));
    qemu.append = append.to_string();
    run(&qemu)
}
