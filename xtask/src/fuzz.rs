//! `cargo xtask fuzz`: runs the fuzz targets of `fuzz/` (the
//! `rootstock-fuzz` crate) under AFL++, coverage-guided, on the host.
//!
//! One run of a target, in `target/fuzz/<target>/`:
//!
//! 1. the instrumented binary is built (`cargo afl build`, into
//!    `target/afl`: its flags differ from the plain build's);
//! 2. the target's seeds (`fuzz/corpus/<target>/`, compiled where they are
//!    sources) are written into `inputs/`, beside what earlier runs found,
//!    and each is run once, so a seed that breaks a property says so with
//!    its panic message;
//! 3. `afl-fuzz` runs for the given seconds (`-V`), under the target's
//!    memory limit (`-m`) and time-out (`-t`), with its output in `out/`
//!    and its log in `afl.log`; a progress line every 5 s (executions,
//!    corpus, crashes, hangs);
//! 4. the new corpus entries are kept in `inputs/` for the next run; each
//!    crash or hang is copied to `target/fuzz/crashes/<target>/`, with the
//!    command that reproduces it (`cargo xtask fuzz <target> --reproduce
//!    FILE`: the plain build, which prints the panic and its backtrace).
//!
//! The targets are the folders of `fuzz/corpus/` (the fuzz crate's tests
//! check that each is a target and each target has one).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What `cargo xtask fuzz` takes.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// The target (control, envelope, resp, http, artifact).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<String>,
    /// Every target, one after the other, each for --seconds.
    #[arg(long)]
    pub all: bool,
    /// How long to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Run FILE once through the target (plain build) instead of fuzzing.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub reproduce: Option<PathBuf>,
}

/// Seconds each target runs in `cargo xtask test`.
pub const TEST_SECONDS: u64 = 10;

/// The optimisation of the instrumented build (AFL++'s default is 3; 1
/// builds Wasmtime and Cranelift much faster and the parsers are cheap).
const AFL_OPT_LEVEL: &str = "1";

/// The fuzz targets: the folders of `fuzz/corpus/`, sorted.
pub fn targets() -> anyhow::Result<Vec<String>> {
    let corpus = crate::root().join("fuzz/corpus");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&corpus).with_context(|| corpus.display().to_string())? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn known(target: &str) -> anyhow::Result<()> {
    let all = targets()?;
    if !all.iter().any(|t| t == target) {
        bail!("no fuzz target `{target}`; the targets: {}", all.join(", "));
    }
    Ok(())
}

/// `cargo xtask fuzz`.
pub fn run(args: FuzzArgs) -> anyhow::Result<i32> {
    if let Some(file) = &args.reproduce {
        let target = args.target.as_deref().unwrap_or_default();
        known(target)?;
        return reproduce(target, file);
    }
    let list = match &args.target {
        Some(target) => {
            known(target)?;
            vec![target.clone()]
        }
        None => targets()?,
    };
    fuzz(&list, args.seconds)?;
    Ok(0)
}

/// Fuzzes each of `targets` for `seconds`; an error if any crashed or hung.
pub fn fuzz(targets: &[String], seconds: u64) -> anyhow::Result<()> {
    install()?;
    let binary = build()?;
    let mut broken = Vec::new();
    for target in targets {
        let found = fuzz_one(&binary, target, seconds)?;
        if !found.is_empty() {
            broken.push(format!("{target} ({})", found.len()));
        }
    }
    if !broken.is_empty() {
        bail!("the fuzzer broke a property in: {}", broken.join(", "));
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(crate::root());
    cargo
}

/// Installs `cargo-afl` and builds its AFL++ if either is missing.
pub fn install() -> anyhow::Result<()> {
    let have = cargo()
        .args(["afl", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("setup: cargo install cargo-afl --locked");
        let status = cargo()
            .args(["install", "cargo-afl", "--locked"])
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("`cargo install cargo-afl --locked` failed");
        }
    }
    // Builds AFL++ (afl-fuzz and its runtime) for this rustc, once.
    let config = cargo()
        .args(["afl", "config", "--build"])
        .stdin(Stdio::null())
        .output()?;
    let said = String::from_utf8_lossy(&config.stderr);
    if !config.status.success() && !said.contains("already built") {
        eprint!("{said}");
        bail!("`cargo afl config --build` failed (see above)");
    }
    Ok(())
}

/// Builds the instrumented fuzz binary; returns its path.
fn build() -> anyhow::Result<PathBuf> {
    let dir = crate::root().join("target/afl");
    eprintln!(
        "fuzz: cargo afl build -p rootstock-fuzz (into {})",
        dir.display()
    );
    let status = cargo()
        .args(["afl", "build", "-p", "rootstock-fuzz", "--target-dir"])
        .arg(&dir)
        .env("AFL_OPT_LEVEL", AFL_OPT_LEVEL)
        .status()?;
    if !status.success() {
        bail!("the instrumented build failed");
    }
    Ok(dir.join("debug/rootstock-fuzz"))
}

/// Runs `file` once through `target`, in the plain build.
fn reproduce(target: &str, file: &Path) -> anyhow::Result<i32> {
    let status = cargo().args(["build", "-p", "rootstock-fuzz"]).status()?;
    if !status.success() {
        bail!("building rootstock-fuzz failed");
    }
    let binary = crate::root().join("target/debug/rootstock-fuzz");
    let status = Command::new(binary)
        .arg(target)
        .arg(file)
        .env("RUST_BACKTRACE", "1")
        .status()?;
    Ok(status.code().unwrap_or(1))
}

/// The target's limits, as its binary reports them: (memory MiB, ms).
fn limits(binary: &Path, target: &str) -> anyhow::Result<(String, String)> {
    let out = Command::new(binary).args([target, "--limits"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        [memory, time] => Ok((memory.into(), time.into())),
        _ => bail!("{target} --limits printed `{}`", text.trim()),
    }
}

/// One target for `seconds`; returns the crashes and hangs it saved.
fn fuzz_one(binary: &Path, target: &str, seconds: u64) -> anyhow::Result<Vec<PathBuf>> {
    let work = crate::root().join("target/fuzz").join(target);
    let inputs = work.join("inputs");
    let out = work.join("out");
    let status = Command::new(binary)
        .args([target, "--seeds"])
        .arg(&inputs)
        .status()?;
    if !status.success() {
        bail!("{target}: writing the seeds failed");
    }
    let seeds: Vec<PathBuf> = files(&inputs)?;
    let status = Command::new(binary).arg(target).args(&seeds).status()?;
    if !status.success() {
        bail!(
            "{target}: an input in {} breaks a property (above)",
            inputs.display()
        );
    }
    let (memory, timeout) = limits(binary, target)?;
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let log = work.join("afl.log");
    eprintln!(
        "fuzz: {target}: {} s, {} inputs, -m {memory} MiB, -t {timeout} ms (log: {})",
        seconds,
        seeds.len(),
        log.display()
    );
    let mut afl = cargo()
        .args(["afl", "fuzz", "-i"])
        .arg(&inputs)
        .arg("-o")
        .arg(&out)
        .args([
            "-V",
            &seconds.to_string(),
            "-m",
            &memory,
            "-t",
            &timeout,
            "--",
        ])
        .arg(binary)
        .arg(target)
        .env("AFL_NO_UI", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_NO_AFFINITY", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("afl.stderr"))?)
        .spawn()
        .context("cannot start cargo afl fuzz")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = afl.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_secs(5));
        if let Some(line) = progress(&out.join("default/plot_data")) {
            eprintln!(
                "fuzz: {target} {:>4} s: {line}",
                started.elapsed().as_secs()
            );
        }
    };
    let last = progress(&out.join("default/plot_data")).unwrap_or_default();
    if !status.success() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        bail!(
            "{target}: afl-fuzz failed ({status}); the end of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // What it found goes on from here next time.
    for entry in files(&out.join("default/queue"))? {
        if let Some(name) = entry.file_name() {
            std::fs::copy(&entry, inputs.join(name))?;
        }
    }
    let mut saved = Vec::new();
    for (kind, one) in [("crashes", "crash"), ("hangs", "hang")] {
        for found in files(&out.join("default").join(kind))? {
            let name = found.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("README") {
                continue;
            }
            let keep = crate::root().join("target/fuzz/crashes").join(target);
            std::fs::create_dir_all(&keep)?;
            let name = format!("{one}-{}", name.replace([':', ','], "_"));
            let kept = keep.join(name);
            std::fs::copy(&found, &kept)?;
            eprintln!(
                "fuzz: {target}: {one} saved in {}\n      reproduce: cargo xtask fuzz {target} --reproduce {}",
                kept.display(),
                kept.display()
            );
            saved.push(kept);
        }
    }
    eprintln!("fuzz: {target} done: {last}");
    Ok(saved)
}

/// The files in `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The last line of AFL++'s `plot_data`, as a progress line.
fn progress(plot: &Path) -> Option<String> {
    let text = std::fs::read_to_string(plot).ok()?;
    let header = text.lines().next()?.trim_start_matches("# ");
    let last = text.lines().last().filter(|l| !l.starts_with('#'))?;
    let columns: Vec<&str> = header.split(", ").collect();
    let values: Vec<&str> = last.split(", ").collect();
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .and_then(|i| values.get(i))
            .map(|v| v.trim())
            .unwrap_or("?")
    };
    if values.len() != columns.len() {
        return None;
    }
    Some(format!(
        "{} execs ({}/s), corpus {}, edges {}, crashes {}, hangs {}",
        get("total_execs"),
        get("execs_per_sec"),
        get("corpus_count"),
        get("edges_found"),
        get("saved_crashes"),
        get("saved_hangs")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_the_last_line_of_plot_data() {
        let dir = tempfile::tempdir().unwrap();
        let plot = dir.path().join("plot_data");
        std::fs::write(
            &plot,
            "# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, \
             map_size, saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found\n\
             5, 0, 1, 20, 3, 1, 1.20%, 0, 0, 2, 1500.00, 7000, 300\n\
             10, 1, 4, 25, 3, 1, 1.30%, 1, 0, 3, 1600.00, 15000, 320\n",
        )
        .unwrap();
        assert_eq!(
            progress(&plot).as_deref(),
            Some("15000 execs (1600.00/s), corpus 25, edges 320, crashes 1, hangs 0")
        );
        assert_eq!(progress(&dir.path().join("missing")), None);
        std::fs::write(&plot, "# relative_time, total_execs\n").unwrap();
        assert_eq!(progress(&plot), None, "no figures yet");
    }

    #[test]
    fn the_targets_are_the_corpus_folders() {
        let all = targets().unwrap();
        for name in ["artifact", "control", "envelope", "http", "resp"] {
            assert!(all.iter().any(|t| t == name), "{name} in {all:?}");
        }
        let error = known("nope").unwrap_err().to_string();
        assert!(
            error.contains("no fuzz target `nope`") && error.contains("resp"),
            "{error}"
        );
    }
}
