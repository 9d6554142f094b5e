//! `cargo xtask graft new` and `graft points`: a graft crate from nothing,
//! and the table of graft points it is made from.
//!
//! The table is one join, never a second copy: each point's declaration
//! as images make it (`graft_host::points`, `graft_host::storage`: kind,
//! signature, capabilities, budget) with its ABI as a graft sees it
//! (`graft_sdk::points::ALL`: what the argument, context and result are,
//! the constant that changes nothing, an example call). `graft new`
//! writes the entry function with the declared signature, imports the
//! point's constants from the SDK and adds a host test that runs the
//! function on the example call through `graft_sdk::testing` (natively:
//! no engine, no image). `graft points` prints the table the README's
//! "Writing a graft" section shows.
//!
//! The crate it writes stands alone (a `[workspace]` of its own, the SDK
//! by relative path, the release profile and the wasm32 link flags of this
//! workspace copied in), so it builds wherever it is put outside the
//! folders whose crates are this workspace's members.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use graft_runtime::{Capabilities, Kind, PointSpec, ValType};
use graft_sdk::points::Abi;

/// A graft point: its ABI for grafts and its declaration by images.
pub struct Point {
    pub abi: &'static Abi,
    pub spec: PointSpec,
}

/// Every graft point images here declare, in the SDK's order.
pub fn points() -> Vec<Point> {
    use graft_host::{points, storage};
    let specs = [
        points::net_rx(),
        points::http_request(),
        points::sched_pick(),
        storage::cache_evict(),
        storage::cache_readahead(),
        storage::cache_filter(),
    ];
    graft_sdk::points::ALL
        .iter()
        .map(|abi| Point {
            abi,
            spec: specs
                .iter()
                .find(|s| s.name == abi.name)
                .unwrap_or_else(|| panic!("no declaration of graft point {}", abi.name))
                .clone(),
        })
        .collect()
}

/// The point named `name`, or an error listing the points.
pub fn point(name: &str) -> anyhow::Result<Point> {
    let mut all = points();
    match all.iter().position(|p| p.spec.name == name) {
        Some(at) => Ok(all.swap_remove(at)),
        None => bail!(
            "no graft point `{name}`; the points are: {}",
            all.iter()
                .map(|p| p.abi.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The capability names `--grant` takes, in the runtime's order.
const CAPABILITIES: [&str; 9] = [
    "context",
    "context-write",
    "maps",
    "counters",
    "locks",
    "buffers",
    "time",
    "log",
    "events",
];

fn capability_names(set: Capabilities) -> Vec<&'static str> {
    CAPABILITIES
        .into_iter()
        .filter(|name| {
            let one = Capabilities::parse(name).expect("a capability's name");
            set.intersect(one) == one
        })
        .collect()
}

fn rust_type(ty: &ValType) -> &'static str {
    match ty {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
    }
}

impl Point {
    /// `graft_main`'s parameters, `name: type, …`.
    fn params(&self) -> String {
        let name = |i: usize| match i {
            0 => self.abi.param.to_string(),
            i => format!("arg{i}"),
        };
        let params = self.spec.params.iter().enumerate();
        params
            .map(|(i, ty)| format!("{}: {}", name(i), rust_type(ty)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `graft_main`'s signature, `(params) -> result`.
    pub fn signature(&self) -> String {
        let result = match self.spec.results.first() {
            Some(ty) => format!(" -> {}", rust_type(ty)),
            None => String::new(),
        };
        format!("({}){result}", self.params())
    }

    /// The module of `graft_sdk::points` with the point's constants.
    pub fn module(&self) -> String {
        self.abi.name.replace('.', "_")
    }

    fn kind(&self) -> String {
        match self.spec.kind {
            Kind::Replace => "replace".into(),
            Kind::Event { max_handlers } => format!("event, ≤ {max_handlers} handlers"),
        }
    }

    fn budget(&self) -> String {
        let s = &self.spec;
        format!(
            "{}, {} KiB, {}",
            s.fuel,
            s.memory_pages * 64,
            s.max_failures
        )
    }
}

/// The table of graft points, as markdown (what `graft points` prints).
pub fn table() -> String {
    let mut md = String::from(
        "| point | kind | `graft_main` | context | result | capabilities, at most | fuel per call, memory, failures before unloading |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for p in points() {
        let caps = capability_names(p.spec.capabilities);
        let caps = if caps.len() == CAPABILITIES.len() {
            "all".to_string()
        } else {
            caps.join(", ")
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | `{}` | {} | {} | {} | {} |",
            p.abi.name,
            p.kind(),
            p.signature(),
            p.abi.context,
            p.abi.result,
            caps,
            p.budget()
        );
    }
    md
}

/// Checks a crate name the way cargo does, roughly: ASCII letters, digits,
/// `-` and `_`, starting with a letter, and not a name the crate would
/// shadow.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !starts || !rest {
        bail!(
            "`{name}` is not a crate name: use ASCII letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let reserved = ["std", "core", "alloc", "test", "proc_macro", "graft-sdk"];
    if reserved.contains(&name.replace('_', "-").as_str()) || reserved.contains(&name) {
        bail!("`{name}` is taken (a crate the graft depends on or the compiler provides)");
    }
    Ok(())
}

/// Folders of this workspace whose every sub-folder is a member (a crate
/// there with a workspace of its own would break the workspace).
const MEMBER_FOLDERS: [&str; 3] = ["grafts/samples", "images", "tests/images"];

/// Where the crate goes: `dir`, or `./<name>`; refused if it exists or is
/// a place of this workspace's members.
fn destination(name: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dest = match dir {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from(name),
    };
    if dest.symlink_metadata().is_ok() {
        bail!("{} exists already; choose a new directory", dest.display());
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .with_context(|| format!("no directory {}", parent.display()))?;
    let root = crate::root().canonicalize()?;
    if let Some(folder) = MEMBER_FOLDERS.iter().find(|f| parent == root.join(f)) {
        bail!(
            "every crate in {folder}/ is a member of the Rootstock workspace, which a new graft crate \
             (a workspace of its own) is not: create it elsewhere"
        );
    }
    Ok(parent.join(dest.file_name().context("the directory has no name")?))
}

/// The lines of `text` from the line `header` to the next section.
fn section(text: &str, header: &str) -> anyhow::Result<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    let first = lines.next().with_context(|| format!("no {header}"))?;
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with('[')).collect();
    Ok(format!("{first}\n{}\n", body.join("\n").trim_end()))
}

/// The files of a new graft crate `name` at `point`, with the SDK at `sdk`
/// (a path from the crate's directory).
pub fn files(name: &str, point: &Point, sdk: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let root = crate::root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let config = std::fs::read_to_string(root.join(".cargo/config.toml"))?;
    let profile = section(&manifest, "[profile.release]")?;
    let wasm = section(&config, "[target.wasm32-unknown-unknown]")?;
    let cargo_toml = format!(
        "[package]\n\
         name = \"{name}\"\n\
         description = \"A graft for {point_name}\"\n\
         version = \"0.1.0\"\n\
         edition = \"2024\"\n\
         publish = false\n\n\
         # A graft is a WebAssembly module (cdylib); the rlib is for tests.\n\
         [lib]\n\
         crate-type = [\"cdylib\", \"rlib\"]\n\n\
         [dependencies]\n\
         graft-sdk = {{ path = \"{sdk}\" }}\n\n\
         # The accessors' host-side stand-in: `cargo test` runs the graft natively.\n\
         [dev-dependencies]\n\
         graft-sdk = {{ path = \"{sdk}\", features = [\"testing\"] }}\n\n\
         # As Rootstock's own grafts are built.\n\
         {profile}\n\
         # A workspace of its own.\n\
         [workspace]\n",
        point_name = point.abi.name,
    );
    let config_toml = format!(
        "# As Rootstock's own grafts are linked: a stack that fits the few\n\
         # pages of linear memory a graft point allows.\n\
         {wasm}"
    );
    Ok(vec![
        (PathBuf::from("Cargo.toml"), cargo_toml),
        (PathBuf::from(".cargo/config.toml"), config_toml),
        (PathBuf::from(".gitignore"), "/target\n".into()),
        (PathBuf::from("src/lib.rs"), lib_rs(name, point)),
    ])
}

/// The graft's source: the entry function, its export and its host test.
fn lib_rs(name: &str, point: &Point) -> String {
    let abi = point.abi;
    let module = point.module();
    let neutral = abi.neutral;
    let params = point.params();
    let signature = point.signature();
    let reads = point
        .spec
        .capabilities
        .has(graft_runtime::Capability::Context);
    let (imports, body) = if reads {
        (
            "use graft_sdk::{context_len, context_read};\n",
            format!(
                "    // The first bytes of the context (at most 16).\n\
                 \x20   let mut head = [0u8; 16];\n\
                 \x20   let got = context_len().min(head.len());\n\
                 \x20   context_read(0, &mut head[..got]);\n\
                 \x20   let _ = ({}, head);\n",
                abi.param
            ),
        )
    } else {
        ("", format!("    let _ = {};\n", abi.param))
    };
    let kind = match point.spec.kind {
        Kind::Replace => {
            "It replaces the image's compiled-in policy while it is loaded.".to_string()
        }
        Kind::Event { max_handlers } => format!(
            "It is one of up to {max_handlers} handlers of the event; a guard\n\
             //! (`graft_sdk::graft_guard!`) can keep it to the calls it cares about."
        ),
    };
    // The example's argument (an i64) as the entry function takes it.
    let arg = match point.spec.params.first() {
        Some(ValType::I64) => "ABI.example_arg".to_string(),
        other => format!("ABI.example_arg as {}", other.map_or("i32", rust_type)),
    };
    format!(
        r#"//! `{name}`: a graft for `{point}` (made by `cargo xtask graft new`).
//!
//! `graft_main{signature}`:
//! - its context: {context};
//! - it returns {result}.
//!
//! {kind}
//!
//! As made, it reads what it is given and returns `{neutral}`, which
//! changes nothing. `cargo test` runs it on the host (`graft_sdk::testing`);
//! `cargo xtask graft load {point} <this directory>` builds it for
//! `wasm32-unknown-unknown` and loads it into a running image.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![forbid(unsafe_code)]

use graft_sdk::points::{module}::{neutral};
{imports}
/// One call of the graft.
pub fn on_call({params}){ret} {{
{body}    {neutral}
}}

graft_sdk::graft_main!(on_call: fn({params}){ret});

#[cfg(test)]
mod tests {{
    use graft_sdk::points::{module}::ABI;
    use graft_sdk::testing::Call;

    #[test]
    fn the_example_call_changes_nothing() {{
        let mut call = Call::new(ABI.example_context);
        let result = call.run(|| super::on_call({arg}));
        assert_eq!(result, super::{neutral});
        assert_eq!(call.context, ABI.example_context);
    }}
}}
"#,
        point = abi.name,
        context = abi.context,
        result = abi.result,
        ret = point
            .spec
            .results
            .first()
            .map_or(String::new(), |ty| format!(" -> {}", rust_type(ty))),
    )
}

/// The SDK's path as the crate at `dest` names it: relative when the two
/// share a folder below `/` (the crate moves with the checkout), else
/// absolute.
fn sdk_path(sdk: &Path, dest: &Path) -> PathBuf {
    let top = |p: &Path| p.components().nth(1).map(|c| c.as_os_str().to_owned());
    match pathdiff::diff_paths(sdk, dest) {
        Some(relative) if top(sdk) == top(dest) => relative,
        _ => sdk.to_path_buf(),
    }
}

/// `graft new`: writes the crate `name` for `point` at `dir` (or
/// `./<name>`); returns its directory. Refused without changing anything
/// if the name, the point or the place is wrong; removed again if writing
/// it fails part-way.
pub fn scaffold(name: &str, point: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let point = self::point(point)?;
    let dest = destination(name, dir)?;
    let sdk = crate::root().join("grafts/sdk").canonicalize()?;
    let files = files(name, &point, &sdk_path(&sdk, &dest).to_string_lossy())?;
    std::fs::create_dir(&dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let written = files.iter().try_for_each(|(path, text)| {
        let path = dest.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e);
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_of_the_sdk_is_declared_and_the_other_way_round() {
        let points = points();
        assert_eq!(points.len(), graft_sdk::points::ALL.len());
        let http = point("http.request").unwrap();
        assert_eq!(http.signature(), "(len: i32) -> i32");
        assert_eq!(
            point("cache.readahead").unwrap().signature(),
            "(block: i64) -> i64"
        );
        assert_eq!(
            capability_names(http.spec.capabilities),
            ["context", "maps", "counters", "time", "log"]
        );
    }

    #[test]
    fn an_unknown_point_is_refused_with_the_list() {
        let error = format!("{:#}", point("net.tx").err().unwrap());
        assert!(error.contains("no graft point `net.tx`"), "{error}");
        for abi in graft_sdk::points::ALL {
            assert!(error.contains(abi.name), "{error}");
        }
    }

    #[test]
    fn bad_names_and_places_are_refused_and_change_nothing() {
        for bad in [
            "",
            "9lives",
            "my graft",
            "über",
            "a/b",
            "core",
            "graft_sdk",
            "-x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        check_name("my-graft_2").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("keep"), "mine").unwrap();
        let error = format!(
            "{:#}",
            scaffold("taken", "net.rx", Some(&taken)).unwrap_err()
        );
        assert!(error.contains("exists already"), "{error}");
        assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
        let nowhere = dir.path().join("no/such/parent/g");
        assert!(scaffold("g", "net.rx", Some(&nowhere)).is_err());
        let fresh = dir.path().join("fresh");
        assert!(scaffold("fresh", "net.tx", Some(&fresh)).is_err());
        assert!(scaffold("bad name", "net.rx", Some(&fresh)).is_err());
        assert!(!fresh.exists());
        let member = crate::root().join("grafts/samples/mine");
        let error = format!(
            "{:#}",
            scaffold("mine", "net.rx", Some(&member)).unwrap_err()
        );
        assert!(
            error.contains("member of the Rootstock workspace"),
            "{error}"
        );
        assert!(!member.exists());
    }

    #[test]
    fn a_new_crate_has_the_signature_constants_and_a_host_test() {
        let dir = tempfile::tempdir().unwrap();
        let made = scaffold("slow-path", "cache.readahead", Some(&dir.path().join("g"))).unwrap();
        let lib = std::fs::read_to_string(made.join("src/lib.rs")).unwrap();
        for expected in [
            "pub fn on_call(block: i64) -> i64 {",
            "graft_main!(on_call: fn(block: i64) -> i64)",
            "use graft_sdk::points::cache_readahead::NONE;",
            "super::on_call(ABI.example_arg));",
        ] {
            assert!(lib.contains(expected), "no {expected:?} in:\n{lib}");
        }
        assert!(!lib.contains("context_read"), "no context to read: {lib}");
        let manifest = std::fs::read_to_string(made.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"slow-path\""), "{manifest}");
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
        assert!(manifest.contains("opt-level = \"s\""), "{manifest}");
        let sdk = made.join(
            manifest
                .lines()
                .find_map(|l| l.strip_prefix("graft-sdk = { path = \""))
                .and_then(|l| l.split('"').next())
                .unwrap(),
        );
        assert!(sdk.join("src/points.rs").is_file(), "{}", sdk.display());
        let inside = crate::root().join("target/g");
        let sdk = crate::root().join("grafts/sdk");
        assert_eq!(sdk_path(&sdk, &inside), Path::new("../../grafts/sdk"));
        assert_eq!(sdk_path(&sdk, Path::new("/nowhere/g")), sdk);
        let config = std::fs::read_to_string(made.join(".cargo/config.toml")).unwrap();
        assert!(config.contains("-zstack-size="), "{config}");
    }

    #[test]
    fn every_points_new_crate_passes_its_host_test_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        for p in points() {
            let name = format!("g-{}", p.module().replace('_', "-"));
            let made = scaffold(&name, p.abi.name, Some(&dir.path().join(&name))).unwrap();
            let out = std::process::Command::new(env!("CARGO"))
                .current_dir(&made)
                .args(["test", "--quiet"])
                .env("CARGO_TARGET_DIR", dir.path().join("target"))
                .env("RUSTFLAGS", "-D warnings")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                p.abi.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn the_readme_shows_the_table_graft_points_prints() {
        let readme = std::fs::read_to_string(crate::root().join("README.md")).unwrap();
        assert!(
            readme.contains(&table()),
            "README.md's table of graft points differs from `cargo xtask graft points`:\n{}",
            table()
        );
    }
}
