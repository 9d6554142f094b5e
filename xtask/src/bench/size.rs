//! `bench size`: the stripped size of every image (release build).

use std::fmt::Write;

use super::{out_dir, verdict};
use crate::images;

/// hello's target: 64 KiB stripped.
const HELLO_TARGET: u64 = 64 * 1024;

pub fn run() -> anyhow::Result<()> {
    let names = images::all()?;
    eprintln!("bench size: release build of {}", names.join(", "));
    let elves = images::build(&names, true, None)?;
    let mut md =
        String::from("# Image sizes\n\nRelease builds (`opt-level = \"s\"`, LTO), stripped.\n\n");
    md.push_str("| image | stripped | ELF |\n|---|---:|---:|\n");
    let mut json = Vec::new();
    let mut hello = None;
    for (name, elf) in names.iter().zip(&elves) {
        let stripped = images::stripped_size(elf)?;
        let full = std::fs::metadata(elf)?.len();
        writeln!(
            md,
            "| {name} | {:.1} KiB | {:.1} KiB |",
            stripped as f64 / 1024.0,
            full as f64 / 1024.0
        )?;
        json.push(
            serde_json::json!({ "image": name, "stripped_bytes": stripped, "elf_bytes": full }),
        );
        if name == "hello" {
            hello = Some(stripped);
        }
    }
    if let Some(hello) = hello {
        writeln!(
            md,
            "\nTarget: hello ≤ 64 KiB stripped: {} ({:.1} KiB).",
            verdict(hello <= HELLO_TARGET),
            hello as f64 / 1024.0
        )?;
    }
    md.push_str(
        "\nReference (Unikraft EuroSys '21, with dead-code elimination): hello 197 KB, nginx 853 KB, \
         redis 1.11 MB. Hermit (measured on this kind of machine): hello 3.85 MB stripped.\n",
    );
    std::fs::write(out_dir().join("size.md"), &md)?;
    std::fs::write(
        out_dir().join("size.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{md}");
    eprintln!("bench size: wrote target/bench/size.md and size.json");
    Ok(())
}
