//! What the graft tests share: the sample modules, the hostile corpus
//! (`xtask::hostile`, which `cargo xtask bench soak` churns too), and a
//! control client that fails the test with the image's console when the
//! image stops answering.

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

pub use xtask::hostile::{ALL, HOSTILE, Hostile, REFUSED};

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

/// The HTTP status curl gets for `path` from `addr` (`000` if none).
pub fn status(addr: SocketAddr, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "30"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// A WAT module's bytes.
pub fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test module is valid WAT")
}
