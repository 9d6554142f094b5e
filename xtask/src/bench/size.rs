//! `bench size`: the stripped size of every image (release build).

use std::fmt::Write;

use super::{out_dir, verdict};
use crate::images;

/// hello's target: 64 KiB stripped.
const HELLO_TARGET: u64 = 64 * 1024;
/// The grafted images' targets, stripped (the graft runtime included).
const GRAFTED_TARGETS: [(&str, u64); 2] = [("http", 512 * 1024), ("kv", 640 * 1024)];
/// What the images weighed with the wasmi interpreter, KiB stripped.
const INTERPRETER_SIZES: &str = "http 1241 KiB, kv 1373 KiB";
/// The crates of the graft engine: Wasmtime's runtime and what it alone
/// links (its artifact metadata is postcard/serde), and the graft runtime.
const ENGINE_CRATES: [&str; 10] = [
    "wasmtime",
    "cranelift",
    "postcard",
    "serde",
    "target_lexicon",
    "object",
    "gimli",
    "indexmap",
    "hashbrown",
    "graft_runtime",
];

/// The bytes of `elf`'s symbols that belong to [`ENGINE_CRATES`], by their
/// demangled names (`nm`). LTO inlines across crates, so code of the engine
/// inlined into its callers counts elsewhere: a lower bound.
fn engine_share(elf: &std::path::Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("nm")
        .args(["-C", "-S", "--size-sort", "--defined-only"])
        .arg(elf)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `nm` (install binutils): {e}"))?;
    anyhow::ensure!(out.status.success(), "nm failed on {}", elf.display());
    Ok(engine_bytes(&String::from_utf8_lossy(&out.stdout)))
}

/// The engine's bytes in `nm -C -S` output (0 for an image without the
/// graft runtime, whatever serde or hashbrown it links).
fn engine_bytes(nm: &str) -> u64 {
    if !nm.contains("graft_runtime::") {
        return 0;
    }
    nm.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, ' ');
            let (_, size, _, name) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let size = u64::from_str_radix(size, 16).ok()?;
            let name = name.trim_start_matches(['<', '_', '&', ' ']);
            ENGINE_CRATES
                .iter()
                .any(|c| name.starts_with(c) && name[c.len()..].starts_with(['_', ':']))
                .then_some(size)
        })
        .sum()
}

pub fn run() -> anyhow::Result<()> {
    let names = images::all()?;
    eprintln!("bench size: release build of {}", names.join(", "));
    let elves = images::build(&names, true, None)?;
    let mut md =
        String::from("# Image sizes\n\nRelease builds (`opt-level = \"s\"`, LTO), stripped.\n\n");
    md.push_str("| image | stripped | ELF | graft engine (symbols) |\n|---|---:|---:|---:|\n");
    let mut json = Vec::new();
    let mut hello = None;
    let mut sizes = Vec::new();
    for (name, elf) in names.iter().zip(&elves) {
        let stripped = images::stripped_size(elf)?;
        let full = std::fs::metadata(elf)?.len();
        let engine = engine_share(elf)?;
        writeln!(
            md,
            "| {name} | {:.1} KiB | {:.1} KiB | {} |",
            stripped as f64 / 1024.0,
            full as f64 / 1024.0,
            if engine == 0 {
                "—".to_string()
            } else {
                format!("{:.1} KiB", engine as f64 / 1024.0)
            }
        )?;
        json.push(serde_json::json!({
            "image": name, "stripped_bytes": stripped, "elf_bytes": full, "engine_bytes": engine,
        }));
        sizes.push((name.clone(), stripped));
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
    for (image, target) in GRAFTED_TARGETS {
        if let Some((_, size)) = sizes.iter().find(|(name, _)| name == image) {
            writeln!(
                md,
                "Target: {image} with the graft runtime ≤ {} KiB stripped: {} ({:.1} KiB).",
                target / 1024,
                verdict(*size <= target),
                *size as f64 / 1024.0
            )?;
        }
    }
    writeln!(
        md,
        "\nThe graft engine column sums the symbols of {} by name: LTO inlines across crates, so \
         it is a lower bound. With the wasmi interpreter the grafted images weighed {INTERPRETER_SIZES}.",
        ENGINE_CRATES.join(", ")
    )?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_engine_share_counts_its_crates_only() {
        let nm = "0000000000001000 0000000000000100 t wasmtime::runtime::func::Func::call\n\
                  0000000000002000 0000000000000010 t <graft_runtime::val::Vals as core::ops::Deref>::deref\n\
                  0000000000003000 0000000000000200 t core::fmt::write\n\
                  0000000000004000 0000000000000001 t wasmtimely::lookalike\n\
                  0000000000005000 0000000000000020 t cranelift_bforest::map::Map::get\n";
        assert_eq!(super::engine_bytes(nm), 0x100 + 0x10 + 0x20);
        let no_runtime = "0000000000001000 0000000000000100 t hashbrown::raw::RawTable::find\n";
        assert_eq!(super::engine_bytes(no_runtime), 0);
    }
}
