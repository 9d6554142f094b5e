//! The soak's load: keep-alive HTTP clients that check every response,
//! and RESP clients that check every reply and remember every
//! acknowledged SET, so that a write lost by `kv` is counted, not guessed.
//!
//! Every request that fails is kept as a [`Failure`] with the interval it
//! was in flight, so that the report can tell failures inside a warm
//! reboot's window (expected: the server is down) from those outside.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a client waits for a reply before it gives up on the
/// connection (a reply lost to a warm reboot is never coming).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per RESP client; each client SETs its own keys in turn.
pub const KEYS: usize = 200;

/// One request that failed, and when (seconds since the soak began).
#[derive(Clone, Debug)]
pub struct Failure {
    pub client: &'static str,
    pub start: f64,
    pub end: f64,
    pub what: String,
}

/// What every client shares: the clock, the stop flag, the counts.
pub struct Shared {
    pub begin: Instant,
    pub stop: AtomicBool,
    pub http_ok: AtomicU64,
    pub resp_ok: AtomicU64,
    pub failures: Mutex<Vec<Failure>>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            begin: Instant::now(),
            stop: AtomicBool::new(false),
            http_ok: AtomicU64::new(0),
            resp_ok: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        })
    }

    /// Seconds since the soak began.
    pub fn now(&self) -> f64 {
        self.begin.elapsed().as_secs_f64()
    }

    fn failed(&self, client: &'static str, start: f64, what: String) {
        let end = self.now();
        self.failures.lock().unwrap().push(Failure {
            client,
            start,
            end,
            what,
        });
        // A failed connection is retried, but not in a tight loop.
        std::thread::sleep(Duration::from_millis(50));
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A connection to `addr` with [`REPLY_TIMEOUT`] on both directions.
pub fn connect(addr: SocketAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

/// One `GET path` on a keep-alive connection; the body of a 200.
pub(crate) use crate::bench::costs::get as http_get;

/// Requests `/hello.txt` over and over on one keep-alive connection
/// (reconnecting after a failure) until stopped; every response must be
/// a 200 with the page's bytes.
pub fn http_client(shared: Arc<Shared>, addr: SocketAddr, expected: Vec<u8>) {
    let mut stream = None;
    while !shared.stopped() {
        let start = shared.now();
        let result = (|| {
            let connection = match &mut stream {
                Some(connection) => connection,
                None => stream.insert(connect(addr).context("connect")?),
            };
            let body = http_get(connection, "/hello.txt")?;
            anyhow::ensure!(body == expected, "a wrong body ({} bytes)", body.len());
            anyhow::Ok(())
        })();
        match result {
            Ok(()) => {
                shared.http_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stream = None;
                shared.failed("http", start, format!("{e:#}"));
            }
        }
    }
}

/// What a RESP client knows about its keys: the last acknowledged value,
/// and the SETs sent since but never acknowledged (each may or may not
/// have happened, so any of them is right until a read settles it).
#[derive(Debug, Default)]
pub struct Model {
    pub acked: Vec<Option<String>>,
    pub pending: Vec<Vec<String>>,
    /// Reads that found neither: acknowledged writes lost.
    pub lost: Vec<String>,
}

impl Model {
    fn new() -> Model {
        Model {
            acked: vec![None; KEYS],
            pending: vec![Vec::new(); KEYS],
            lost: Vec::new(),
        }
    }

    /// Checks a read of key `i`; settles its pending SETs.
    pub fn check(&mut self, key: &str, i: usize, got: Option<String>) {
        let pending = std::mem::take(&mut self.pending[i]);
        if got.as_ref().is_some_and(|got| pending.contains(got)) {
            self.acked[i] = got;
        } else if got != self.acked[i] {
            self.lost.push(format!(
                "{key}: read {got:?}, acknowledged {:?}",
                self.acked[i]
            ));
            // Counted once: what is there now is what later reads expect.
            self.acked[i] = got;
        }
    }
}

fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        wire.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    wire
}

/// Reads one reply: a simple string, an error, or a bulk string (`None`
/// for a nil bulk).
fn resp_reply(stream: &mut BufReader<TcpStream>) -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let line = line.trim_end();
    match line.as_bytes().first() {
        None => bail!("the server closed the connection"),
        Some(b'+') => Ok(Some(line[1..].to_string())),
        Some(b'-') => bail!("error reply {line:?}"),
        Some(b'$') if line == "$-1" => Ok(None),
        Some(b'$') => {
            let length: usize = line[1..].parse().context("bulk length")?;
            let mut bulk = vec![0; length + 2];
            stream.read_exact(&mut bulk)?;
            anyhow::ensure!(bulk.ends_with(b"\r\n"), "bulk without CRLF");
            bulk.truncate(length);
            Ok(Some(String::from_utf8(bulk).context("bulk is not UTF-8")?))
        }
        _ => bail!("unexpected reply {line:?}"),
    }
}

/// One RESP request and its reply.
pub fn resp(stream: &mut BufReader<TcpStream>, args: &[&str]) -> anyhow::Result<Option<String>> {
    stream.get_mut().write_all(&resp_command(args))?;
    resp_reply(stream)
}

/// The key `i` of client `client`.
pub fn key(client: usize, i: usize) -> String {
    format!("soak:{client}:{i}")
}

/// SETs its keys in turn with fresh values (each one acknowledged `+OK`)
/// and GETs another of them after each, checking it against [`Model`],
/// until stopped; returns the model for the final check.
pub fn resp_client(shared: Arc<Shared>, addr: SocketAddr, client: usize) -> Model {
    let mut model = Model::new();
    let mut stream = None;
    let mut sequence = 0usize;
    while !shared.stopped() {
        let start = shared.now();
        let i = sequence % KEYS;
        let read = (sequence * 7 + 3) % KEYS;
        let (key, value) = (key(client, i), format!("{client}-{sequence}"));
        let result = (|| {
            let connection = match &mut stream {
                Some(connection) => connection,
                None => stream.insert(connect(addr).context("connect")?),
            };
            model.pending[i].push(value.clone());
            let reply = resp(connection, &["SET", &key, &value])?;
            anyhow::ensure!(reply.as_deref() == Some("OK"), "SET answered {reply:?}");
            model.pending[i].clear();
            model.acked[i] = Some(value.clone());
            let other = self::key(client, read);
            let got = resp(connection, &["GET", &other])?;
            model.check(&other, read, got);
            anyhow::Ok(())
        })();
        match result {
            Ok(()) => {
                shared.resp_ok.fetch_add(2, Ordering::Relaxed);
                sequence += 1;
            }
            Err(e) => {
                stream = None;
                shared.failed("resp", start, format!("{e:#}"));
                // The same key gets the next value; the SET that failed
                // stays pending until a read settles it.
                sequence += KEYS;
            }
        }
    }
    model
}

/// Reads every key of `model` back once (after the load stopped).
pub fn final_check(addr: SocketAddr, client: usize, model: &mut Model) -> anyhow::Result<()> {
    let mut stream = connect(addr)?;
    for i in 0..KEYS {
        let key = key(client, i);
        let got = resp(&mut stream, &["GET", &key])?;
        model.check(&key, i, got);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_accepts_acknowledged_and_pending_values_only() {
        let mut model = Model::new();
        model.acked[0] = Some("a".into());
        model.check("k0", 0, Some("a".into()));
        model.pending[0] = vec!["b".into()];
        model.check("k0", 0, Some("a".into()));
        assert!(model.lost.is_empty() && model.pending[0].is_empty());
        model.pending[0] = vec!["b".into(), "c".into()];
        model.check("k0", 0, Some("b".into()));
        assert_eq!(model.acked[0].as_deref(), Some("b"));
        model.pending[0] = vec!["c".into()];
        model.check("k0", 0, Some("c".into()));
        assert_eq!(model.acked[0].as_deref(), Some("c"));
        model.check("k0", 0, None);
        assert_eq!(model.lost.len(), 1, "{:?}", model.lost);
        model.check("k0", 0, None);
        assert_eq!(model.lost.len(), 1, "a loss is counted once");
    }
}
