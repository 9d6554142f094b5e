//! The hostile corpus: graft modules that pass every load-time check for
//! a `graft_main(i32) -> i32` point (`net.rx`, `http.request`) and then
//! misbehave when called, each with the abort cause an image must log for
//! it. The graft tests load each one and check its containment; `cargo
//! xtask bench soak` churns them for minutes and checks that nothing leaks.
//! Some are compiled and then have their machine code overwritten (what a
//! compiler bug or a malicious signer would produce), so that the CPU
//! itself raises an exception inside graft code.

use anyhow::Context;

/// Every capability, for hostile modules (so that only misbehaviour, not
/// a missing right, stops them).
pub const ALL: &str = "context,context-write,maps,counters,locks,buffers,time,log";

/// One misbehaving `graft_main(i32) -> i32` handler: its name, WAT, and
/// the abort cause the image must log for it. With `code`, the compiled
/// artifact's machine code is overwritten with that instruction pattern
/// before it is signed: the CPU raises an exception inside graft code,
/// which the kernel must recover.
pub struct Hostile {
    pub name: &'static str,
    pub wat: &'static str,
    pub cause: &'static str,
    pub code: Option<&'static [u8]>,
}

impl Hostile {
    /// The module's bytes (the WAT assembled).
    pub fn module(&self) -> anyhow::Result<Vec<u8>> {
        wat::parse_str(self.wat).with_context(|| format!("hostile module {}", self.name))
    }

    /// The artifact an envelope carries: the module compiled for the
    /// images, its code overwritten with [`Hostile::code`] if set.
    pub fn artifact(&self) -> anyhow::Result<Vec<u8>> {
        let artifact = crate::keys::compile(&self.module()?)?;
        match self.code {
            None => Ok(artifact),
            Some(pattern) => overwrite_code(&artifact, pattern),
        }
    }

    /// The signed envelope that loads this handler on `point`, with every
    /// capability ([`ALL`]), signed with the development key.
    pub fn envelope(&self, point: &str) -> anyhow::Result<Vec<u8>> {
        crate::keys::seal_compiled(point, ALL, &self.artifact()?)
    }
}

/// `artifact` with every byte of its `.text` section replaced by `pattern`,
/// repeated (its length divides 16, so every function entry starts one).
pub fn overwrite_code(artifact: &[u8], pattern: &[u8]) -> anyhow::Result<Vec<u8>> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(artifact).context("an artifact is an ELF file")?;
    let text = file
        .section_by_name(".text")
        .context("the artifact has no code section")?;
    let (start, len) = text
        .file_range()
        .context("the artifact's code is not in the file")?;
    let mut out = artifact.to_vec();
    let code = &mut out[start as usize..(start + len) as usize];
    for (i, byte) in code.iter_mut().enumerate() {
        *byte = pattern[i % pattern.len()];
    }
    Ok(out)
}

/// `ud2`: raises #UD.
pub const UD2: &[u8] = &[0x0f, 0x0b];
/// `mov rax, [0]`: raises #PF on the unmapped page 0.
pub const LOAD_NULL: &[u8] = &[0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0];
/// `xor eax, eax; div eax`: raises #DE.
pub const DIVIDE_BY_ZERO: &[u8] = &[0x31, 0xc0, 0xf7, 0xf0];

const PASS: &str =
    r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#;

/// One module per misbehaviour that passes the load-time checks and
/// misbehaves when called (forbidden imports and malformed modules are
/// refused at load: see [`REFUSED`]).
pub const HOSTILE: &[Hostile] = &[
    Hostile {
        name: "#UD in graft code",
        wat: PASS,
        cause: "cpu-fault",
        code: Some(UD2),
    },
    Hostile {
        name: "#PF in graft code",
        wat: PASS,
        cause: "cpu-fault",
        code: Some(LOAD_NULL),
    },
    Hostile {
        name: "#DE in graft code",
        wat: PASS,
        cause: "cpu-fault",
        code: Some(DIVIDE_BY_ZERO),
    },
    Hostile {
        name: "infinite loop",
        wat: r#"(module (func (export "graft_main") (param i32) (result i32) (loop (br 0)) (i32.const 0)))"#,
        cause: "fuel-exhausted",
        code: None,
    },
    Hostile {
        name: "out-of-bounds access",
        wat: r#"(module (memory (export "memory") 1)
            (func (export "graft_main") (param i32) (result i32) (i32.load (i32.const 70000))))"#,
        cause: "trap-out-of-bounds",
        code: None,
    },
    Hostile {
        name: "linear-memory blow-up",
        wat: r#"(module (memory (export "memory") 1)
            (func (export "graft_main") (param i32) (result i32)
              (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
              (i32.const 0)))"#,
        cause: "trap-unreachable",
        code: None,
    },
    Hostile {
        name: "deep recursion",
        wat: r#"(module (func $f (export "graft_main") (param i32) (result i32)
              (call $f (i32.add (local.get 0) (i32.const 1)))))"#,
        cause: "trap-stack-overflow",
        code: None,
    },
    Hostile {
        name: "divide by zero",
        wat: r#"(module (func (export "graft_main") (param i32) (result i32)
              (i32.div_s (i32.const 1) (i32.sub (local.get 0) (local.get 0)))))"#,
        cause: "trap-divide-by-zero",
        code: None,
    },
    Hostile {
        name: "invalid return",
        wat: r#"(module (func (export "graft_main") (param i32) (result i32) (i32.const 7)))"#,
        cause: "invalid-return",
        code: None,
    },
    Hostile {
        name: "lock hog",
        wat: r#"(module (import "rootstock" "lock" (func $lock (param i32)))
            (func (export "graft_main") (param i32) (result i32)
              (call $lock (i32.const 1)) (call $lock (i32.const 2)) (loop (br 0)) (i32.const 0)))"#,
        cause: "fuel-exhausted",
        code: None,
    },
    Hostile {
        name: "allocation leak",
        wat: r#"(module (import "rootstock" "buf_alloc" (func $alloc (param i32) (result i32)))
            (func (export "graft_main") (param i32) (result i32)
              (drop (call $alloc (i32.const 30000))) (drop (call $alloc (i32.const 30000)))
              (drop (call $alloc (i32.const 30000))) (i32.const 0)))"#,
        cause: "resource-limit",
        code: None,
    },
    Hostile {
        name: "trap after accessor writes",
        wat: r#"(module (import "rootstock" "counter_add" (func $add (param i32 i64) (result i64)))
            (import "rootstock" "map_put" (func $put (param i32 i64 i64)))
            (func (export "graft_main") (param i32) (result i32)
              (drop (call $add (i32.const 2) (i64.const 1000)))
              (call $put (i32.const 0) (i64.const 1) (i64.const 2))
              unreachable))"#,
        cause: "trap-unreachable",
        code: None,
    },
];

/// A module an image must refuse at load, for a `graft_main(i32) -> i32`
/// point: its name, WAT, the grant it is signed with, and a part of the
/// refusal's message.
pub struct Refused {
    pub name: &'static str,
    pub wat: &'static str,
    pub grant: &'static str,
    pub reason: &'static str,
}

impl Refused {
    /// The module's bytes (the WAT assembled).
    pub fn module(&self) -> anyhow::Result<Vec<u8>> {
        wat::parse_str(self.wat).with_context(|| format!("refused module {}", self.name))
    }
}

/// Modules that are well signed but break the point's rules.
pub const REFUSED: &[Refused] = &[
    Refused {
        name: "forbidden import",
        wat: r#"(module (import "rootstock" "lock" (func (param i32)))
                 (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
        grant: "context",
        reason: "`rootstock.lock` is not granted",
    },
    Refused {
        name: "foreign import",
        wat: r#"(module (import "env" "syscall" (func (param i32)))
                 (func (export "graft_main") (param i32) (result i32) (i32.const 0)))"#,
        grant: ALL,
        reason: "`env.syscall`",
    },
    Refused {
        name: "wrong signature",
        wat: r#"(module (func (export "graft_main") (param i64 i64) (result i32) (i32.const 0)))"#,
        grant: ALL,
        reason: "graft_main",
    },
];
