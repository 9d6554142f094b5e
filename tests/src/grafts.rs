//! What the graft tests share: the sample modules, a hostile corpus for
//! the `net.rx` point (`graft_main(len: i32) -> i32`), and a control
//! client that fails the test with the image's console when the image
//! stops answering.

use std::net::SocketAddr;

use serde_json::Value;
pub use xtask::graft_client::{Client, Reply};

use crate::guest::Guest;

/// The module of sample graft `name`, as its sources compile now
/// (`graft_fixtures`).
pub fn sample(name: &str) -> Vec<u8> {
    graft_fixtures::wasm(name).to_vec()
}

/// A signed envelope of `module` for `point` (the development key, which
/// every image built by xtask trusts).
pub fn sealed(point: &str, grant: &str, module: &[u8]) -> Vec<u8> {
    xtask::keys::seal(point, grant, module).expect("sealing with the development key")
}

/// Every capability, for hostile modules (so that only misbehaviour, not
/// a missing right, stops them).
pub const ALL: &str = "context,context-write,maps,counters,locks,buffers,time,log";

/// One misbehaving `net.rx` handler: its name, WAT, and the abort cause
/// the image must log for it. With `code`, the compiled artifact's machine
/// code is overwritten with that instruction pattern before it is signed
/// (what a compiler bug or a malicious signer would produce): the CPU
/// raises an exception inside graft code, which the kernel must recover.
pub struct Hostile {
    pub name: &'static str,
    pub wat: &'static str,
    pub cause: &'static str,
    pub code: Option<&'static [u8]>,
}

impl Hostile {
    /// The signed envelope that loads this handler on `net.rx`.
    pub fn envelope(&self) -> Vec<u8> {
        let module = wasm(self.wat);
        let Some(pattern) = self.code else {
            return sealed("net.rx", ALL, &module);
        };
        let artifact = xtask::keys::compile(&module).expect("the module compiles");
        let broken = overwrite_code(&artifact, pattern);
        let key = xtask::keys::dev_key().expect("the development key");
        xtask::keys::seal_artifact(
            &key.sk,
            xtask::keys::next_sequence(),
            "net.rx",
            ALL,
            &broken,
        )
        .expect("sealing with the development key")
    }
}

/// `artifact` with every byte of its `.text` section replaced by `pattern`,
/// repeated (its length divides 16, so every function entry starts one).
pub fn overwrite_code(artifact: &[u8], pattern: &[u8]) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(artifact).expect("an artifact is an ELF file");
    let text = file
        .section_by_name(".text")
        .expect("the artifact has code");
    let (start, len) = text.file_range().expect("the code is in the file");
    let mut out = artifact.to_vec();
    let code = &mut out[start as usize..(start + len) as usize];
    for (i, byte) in code.iter_mut().enumerate() {
        *byte = pattern[i % pattern.len()];
    }
    out
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
/// refused at load: see the refusal tests).
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

/// A WAT module's bytes.
pub fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test module is valid WAT")
}

/// A control session with a running guest.
pub struct Control {
    client: Client,
    console: Box<dyn Fn() -> String>,
}

impl Control {
    /// Connects to the guest's control port (forwarded from `addr`).
    pub fn connect(guest: &Guest, addr: SocketAddr) -> Control {
        let client = Client::connect(&addr.to_string())
            .unwrap_or_else(|e| panic!("control channel: {e:#}\n{}", guest.console()));
        let console = guest.console_handle();
        Control {
            client,
            console: Box::new(console),
        }
    }

    fn check(&self, reply: anyhow::Result<Reply>) -> Reply {
        reply.unwrap_or_else(|e| panic!("control channel: {e:#}\n{}", (self.console)()))
    }

    /// Loads `envelope` on `point`; the reply.
    pub fn load(&mut self, point: &str, envelope: &[u8]) -> Reply {
        let reply = self.client.load(point, envelope);
        self.check(reply)
    }

    /// Loads and expects success: the new graft's id.
    pub fn load_ok(&mut self, point: &str, envelope: &[u8]) -> u32 {
        let reply = self.load(point, envelope);
        self.ok(reply)["graft"].as_u64().expect("a graft id") as u32
    }

    /// Loads `envelope` on probation (`--confirm`); the reply.
    pub fn load_confirmed(&mut self, point: &str, envelope: &[u8], within_ms: u64) -> Reply {
        let reply = self.client.load_confirmed(point, envelope, within_ms);
        self.check(reply)
    }

    /// Ends graft `graft`'s probation; the reply.
    pub fn confirm(&mut self, graft: u32) -> Reply {
        let reply = self.client.confirm(graft);
        self.check(reply)
    }

    pub fn replace(&mut self, point: &str, graft: u32, envelope: &[u8]) -> Reply {
        let reply = self.client.replace(point, graft, envelope);
        self.check(reply)
    }

    pub fn unload(&mut self, point: &str, graft: u32) -> Reply {
        let reply = self.client.unload(point, graft);
        self.check(reply)
    }

    pub fn raw(&mut self, bytes: &[u8]) -> Reply {
        let reply = self.client.raw(bytes);
        self.check(reply)
    }

    pub fn list(&mut self) -> Value {
        let reply = self.client.list();
        let reply = self.check(reply);
        self.ok(reply)
    }

    pub fn stats(&mut self) -> Value {
        let reply = self.client.stats(None);
        let reply = self.check(reply);
        self.ok(reply)
    }

    pub fn log(&mut self) -> Value {
        let reply = self.client.log();
        let reply = self.check(reply);
        self.ok(reply)
    }

    /// The JSON of an `ok` reply (fails the test on a refusal).
    pub fn ok(&self, reply: Reply) -> Value {
        reply
            .json()
            .unwrap_or_else(|e| panic!("{e:#}\n{}", (self.console)()))
    }

    /// How many grafts are installed.
    pub fn installed(&mut self) -> usize {
        self.list()["grafts"].as_array().map_or(0, Vec::len)
    }
}

/// The console text, for a refusal's message check.
pub fn refusal(reply: &Reply) -> &str {
    match reply {
        Reply::Err(message) => message,
        Reply::Ok(text) => panic!("expected a refusal, the image accepted: {text}"),
    }
}

/// One `GET /hello.txt` on a new connection; true if it got a 200 within `limit`.
pub fn get_ok(addr: SocketAddr, limit: std::time::Duration) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(limit));
    let request = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    use std::io::{Read, Write};
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200 OK")
}
