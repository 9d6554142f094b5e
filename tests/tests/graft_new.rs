//! From nothing to loaded: `graft new` makes a graft crate for
//! `http.request` in a temporary directory; its host test passes under a
//! plain `cargo test` there (natively, through `graft_sdk::testing`: no
//! image, no WebAssembly engine); `graft load` with the crate's path
//! builds, compiles, signs and loads it into a running `http` image, where
//! `graft list` and `graft stats` show it handling requests; and `graft
//! replace` with the crate edited changes what the server answers. The
//! subcommands run as `cargo xtask graft` runs them
//! (`xtask::graft_cli::run`).

use std::path::Path;
use std::process::Command;

use tests::Qemu;
use tests::grafts::{Control, status};
use tests::guest::Guest;
use xtask::graft_cli::{DEFAULT_GRANT, GraftArgs, GraftCmd};

const CONTROL: u16 = 7070;
const POINT: &str = "http.request";

/// Runs `cargo xtask graft <command>` against the image at `addr`; its exit status.
fn graft(command: GraftCmd, addr: Option<String>) -> i32 {
    xtask::graft_cli::run(GraftArgs {
        command,
        addr,
        json: false,
    })
    .unwrap_or_else(|e| panic!("graft: {e:#}"))
}

/// `cargo test` in the crate at `dir`; its output, or a panic with it.
fn cargo_test(dir: &Path) -> String {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(["test", "--quiet"])
        .output()
        .expect("cargo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "cargo test in {}:\n{text}",
        dir.display()
    );
    text
}

#[test]
fn a_new_graft_crate_passes_its_host_test_and_loads_by_its_path() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("deny-private");
    let new = GraftCmd::New {
        name: "deny-private".into(),
        point: POINT.into(),
        dir: Some(dir.clone()),
    };
    assert_eq!(graft(new, None), 0);
    let tested = cargo_test(&dir);
    assert!(tested.contains("1 passed"), "{tested}");

    let mut qemu = Qemu::new(tests::image("http"));
    qemu.append = "port=80".into();
    let guest = Guest::start_ports(qemu, &[80, CONTROL], "http: serving on");
    let addr = guest.addr_of(CONTROL);
    let module = dir.to_string_lossy().into_owned();
    let load = GraftCmd::Load {
        point: POINT.into(),
        module: module.clone(),
        grant: DEFAULT_GRANT.into(),
        confirm: None,
    };
    assert_eq!(graft(load, Some(addr.to_string())), 0);
    let web = guest.addr_of(80);
    // As made, the graft changes nothing.
    assert_eq!(status(web, "/private/key"), "404");
    assert_eq!(status(web, "/hello.txt"), "200");
    let mut control = Control::connect(&guest, addr);
    let list = control.list();
    assert_eq!(list["grafts"][0]["point"], POINT, "{list}");
    let id = list["grafts"][0]["id"].as_u64().expect("an id") as u32;
    let stats = control.stats();
    let seen = &stats["grafts"][0];
    assert_eq!(seen["id"], id, "{stats}");
    assert!(seen["calls"].as_u64() >= Some(2), "{stats}");
    assert_eq!(seen["commits"], seen["calls"], "{stats}");

    // Edited to answer 403 under /private, and replaced by its path.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let edited = source.replacen(
        "    let _ = (len, head);\n    CARRY_ON\n",
        "    let _ = len;\n    if head.starts_with(b\"GET /private\") { 403 } else { CARRY_ON }\n",
        1,
    );
    assert_ne!(source, edited, "the scaffold's body:\n{source}");
    std::fs::write(&lib, edited).unwrap();
    let replace = GraftCmd::Replace {
        point: POINT.into(),
        graft: id,
        module,
        grant: DEFAULT_GRANT.into(),
    };
    assert_eq!(graft(replace, Some(addr.to_string())), 0);
    assert_eq!(status(web, "/private/key"), "403");
    assert_eq!(status(web, "/hello.txt"), "200");
    assert_eq!(control.installed(), 1);
}
