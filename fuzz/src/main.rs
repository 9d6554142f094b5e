//! `rootstock-fuzz TARGET [FILE...]`: runs one fuzz target.
//!
//! Built by `cargo afl build` (what `cargo xtask fuzz` does), it runs
//! under `afl-fuzz`, one input per iteration from AFL++'s fork server.
//! Built plainly, it runs each FILE (or standard input) once through the
//! target: a property that breaks panics with what broke, and the exit
//! status is not 0. `--seeds DIR` writes the target's seed inputs into DIR;
//! `--limits` prints the memory (MiB) and time (ms) an input may take.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: rootstock-fuzz TARGET [FILE...] | TARGET --seeds DIR | TARGET --limits\n\
         targets: {}",
        rootstock_fuzz::names()
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().and_then(|name| rootstock_fuzz::target(name)) else {
        return usage();
    };
    let files = &args[1..];
    if let [flag, dir] = files
        && flag == "--seeds"
    {
        return write_seeds(&target, &PathBuf::from(dir));
    }
    if let [flag] = files
        && flag == "--limits"
    {
        println!("{} {}", target.memory_mb, target.timeout_ms);
        return ExitCode::SUCCESS;
    }
    #[cfg(fuzzing)]
    if files.is_empty() {
        rootstock_fuzz::fuzz(target);
        return ExitCode::SUCCESS;
    }
    let inputs: Vec<(String, std::io::Result<Vec<u8>>)> = if files.is_empty() {
        let mut input = Vec::new();
        let read = std::io::stdin().read_to_end(&mut input).map(|_| input);
        vec![("standard input".into(), read)]
    } else {
        files
            .iter()
            .map(|f| (f.clone(), std::fs::read(f)))
            .collect()
    };
    for (name, input) in inputs {
        let input = match input {
            Ok(input) => input,
            Err(error) => {
                eprintln!("rootstock-fuzz: {name}: {error}");
                return ExitCode::FAILURE;
            }
        };
        (target.check)(&input);
        let bytes = input.len();
        eprintln!("{}: {name} ({bytes} bytes): no property broke", target.name);
    }
    ExitCode::SUCCESS
}

fn write_seeds(target: &rootstock_fuzz::Target, dir: &PathBuf) -> ExitCode {
    let seeds = match (target.seeds)(&rootstock_fuzz::corpus(target)) {
        Ok(seeds) => seeds,
        Err(error) => {
            eprintln!("rootstock-fuzz: the seeds of {}: {error}", target.name);
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(dir) {
        eprintln!("rootstock-fuzz: {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, bytes) in &seeds {
        if let Err(error) = std::fs::write(dir.join(name), bytes) {
            eprintln!("rootstock-fuzz: {}: {error}", dir.join(name).display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "{}: {} seeds in {}",
        target.name,
        seeds.len(),
        dir.display()
    );
    ExitCode::SUCCESS
}
