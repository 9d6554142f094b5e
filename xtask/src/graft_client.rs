//! A client for an image's graft control channel: the line protocol of
//! `graft_control::protocol`, spoken over TCP (the image's port 7070,
//! forwarded by `cargo xtask run`) or over any byte stream, such as QEMU's
//! serial console.
//!
//! Every request is one line (`load`/`replace` add a counted binary body,
//! the signed envelope) and gets exactly one line back, `ok <json>` or
//! `err <message>`, returned as a [`Reply`]. Transport failures (refused
//! connection, time-out, the image hanging up) are `Err` of the outer
//! `anyhow::Result`; a refusal by the image is `Ok(Reply::Err(..))`, so
//! tests can tell "the image said no" from "nothing answered".
//!
//! The client never retries and never reorders: one request, one reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use graft_control::{Command, Response};

/// Where `cargo xtask graft` looks for an image unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7070";
/// Environment variable overriding [`DEFAULT_ADDR`].
pub const ADDR_ENV: &str = "ROOTSTOCK_CONTROL";
/// How long to wait for a reply (TCG is slow; loading compiles the module).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest reply line accepted (a `stats` reply for many grafts is long).
pub const MAX_REPLY: u64 = 4 << 20;

/// Why an image may hang up instead of replying.
const HUNG_UP: &str = "either nothing in the image listens behind QEMU's forward (still \
     booting, or an image without graft control), or the request ended the session \
     (such as a body over the size limit)";

/// The image's answer to one request: the text after `ok ` (JSON) or `err `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    Err(String),
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Ok(_))
    }

    /// `Ok(json text)` or `Err(message)`.
    pub fn into_result(self) -> Result<String, String> {
        match self {
            Reply::Ok(text) => Ok(text),
            Reply::Err(message) => Err(message),
        }
    }

    /// The JSON of an `ok` reply, parsed; a refusal or bad JSON is an error.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        match self {
            Reply::Ok(text) => serde_json::from_str(text)
                .with_context(|| format!("the image's reply is not JSON: {text}")),
            Reply::Err(message) => bail!("the image refused: {message}"),
        }
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        match response {
            Response::Ok(text) => Reply::Ok(text),
            Response::Err(text) => Reply::Err(text),
        }
    }
}

/// The address to use: `ROOTSTOCK_CONTROL` if set, else [`DEFAULT_ADDR`].
pub fn default_addr() -> String {
    std::env::var(ADDR_ENV)
        .ok()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string())
}

/// Joins a reader and a writer into one stream (a child's stdout and stdin,
/// say), for [`Client::over`].
pub struct Duplex<R, W> {
    pub reader: R,
    pub writer: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// The bytes of a request, as the image's `Decoder` expects them. Point
/// names are checked here so a typo gets a local error, not a garbled line.
pub fn encode(command: &Command) -> anyhow::Result<Vec<u8>> {
    let point = match command {
        Command::Load { point, .. }
        | Command::LoadConfirmed { point, .. }
        | Command::Replace { point, .. }
        | Command::Unload { point, .. }
        | Command::Stats { point: Some(point) } => Some(point),
        Command::List | Command::Stats { point: None } | Command::Log | Command::Confirm { .. } => {
            None
        }
    };
    if let Some(name) = point
        && !graft_control::valid_point_name(name.as_bytes())
    {
        bail!(
            "`{name}` is not a graft point name (1 to {} letters, digits, `.`, `_`, `-`)",
            graft_control::MAX_POINT_NAME
        );
    }
    Ok(command.encode())
}

/// A session with one image's control channel.
pub struct Client<S: Read + Write = TcpStream> {
    stream: BufReader<S>,
    /// Where the other end is, for messages.
    peer: String,
    /// Skip lines that are not replies (a console also carries the log).
    skip_noise: bool,
}

impl Client<TcpStream> {
    /// Connects to `addr` (`HOST:PORT`) with [`CONNECT_TIMEOUT`], and sets
    /// [`READ_TIMEOUT`] for replies.
    pub fn connect(addr: &str) -> anyhow::Result<Client<TcpStream>> {
        let targets: Vec<_> = addr
            .to_socket_addrs()
            .with_context(|| format!("`{addr}` is not an address (expected HOST:PORT)"))?
            .collect();
        let mut last = None;
        for target in &targets {
            match TcpStream::connect_timeout(target, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(READ_TIMEOUT))?;
                    stream.set_write_timeout(Some(READ_TIMEOUT))?;
                    stream.set_nodelay(true)?;
                    let mut client = Client::over(stream);
                    client.peer = addr.to_string();
                    client.skip_noise = false;
                    return Ok(client);
                }
                Err(error) => last = Some(error),
            }
        }
        match last {
            Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => bail!(
                "no image listening on {addr} — start one with `cargo xtask run http -p 8080:80`"
            ),
            Some(e) if e.kind() == std::io::ErrorKind::TimedOut => bail!(
                "no answer from {addr} within {} s — is the address right?",
                CONNECT_TIMEOUT.as_secs()
            ),
            Some(e) => Err(e).with_context(|| format!("cannot connect to {addr}")),
            None => bail!("`{addr}` resolves to no address"),
        }
    }

    /// Changes the reply time-out (the default is [`READ_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stream.get_ref().set_read_timeout(Some(timeout))?;
        self.stream.get_ref().set_write_timeout(Some(timeout))?;
        Ok(())
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over any stream. Time-outs are the stream's own (a
    /// `TcpStream`'s read time-out, say); lines that are not replies
    /// (console log output) are skipped.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream: BufReader::new(stream),
            peer: "the image".into(),
            skip_noise: true,
        }
    }

    /// Whether lines that are not replies are skipped (on by default for
    /// [`Client::over`], off for [`Client::connect`], where such a line
    /// means the port is not a graft control port).
    pub fn skip_noise(mut self, skip: bool) -> Client<S> {
        self.skip_noise = skip;
        self
    }

    /// The stream, for anything this client does not do.
    pub fn get_mut(&mut self) -> &mut S {
        self.stream.get_mut()
    }

    /// Loads a signed envelope at graft point `point`.
    pub fn load(&mut self, point: &str, envelope: &[u8]) -> anyhow::Result<Reply> {
        self.request(&Command::Load {
            point: point.into(),
            envelope: envelope.to_vec(),
        })
    }

    /// Loads a signed envelope on probation: unloaded by the image unless
    /// [`Client::confirm`] follows within `within_ms`.
    pub fn load_confirmed(
        &mut self,
        point: &str,
        envelope: &[u8],
        within_ms: u64,
    ) -> anyhow::Result<Reply> {
        self.request(&Command::LoadConfirmed {
            point: point.into(),
            envelope: envelope.to_vec(),
            within_ms,
        })
    }

    /// Ends the probation of graft `graft`.
    pub fn confirm(&mut self, graft: u32) -> anyhow::Result<Reply> {
        self.request(&Command::Confirm { graft })
    }

    /// Replaces graft `graft` at `point` with a signed envelope's module.
    pub fn replace(&mut self, point: &str, graft: u32, envelope: &[u8]) -> anyhow::Result<Reply> {
        self.request(&Command::Replace {
            point: point.into(),
            graft,
            envelope: envelope.to_vec(),
        })
    }

    /// Unloads graft `graft` from `point`.
    pub fn unload(&mut self, point: &str, graft: u32) -> anyhow::Result<Reply> {
        self.request(&Command::Unload {
            point: point.into(),
            graft,
        })
    }

    /// The loaded grafts and the image's graft points.
    pub fn list(&mut self) -> anyhow::Result<Reply> {
        self.request(&Command::List)
    }

    /// Per-graft statistics, for one point or all.
    pub fn stats(&mut self, point: Option<&str>) -> anyhow::Result<Reply> {
        self.request(&Command::Stats {
            point: point.map(str::to_string),
        })
    }

    /// The fault log.
    pub fn log(&mut self) -> anyhow::Result<Reply> {
        self.request(&Command::Log)
    }

    /// Sends one request and reads its reply.
    pub fn request(&mut self, command: &Command) -> anyhow::Result<Reply> {
        let bytes = encode(command)?;
        self.raw(&bytes)
    }

    /// Sends arbitrary bytes and reads one reply line (for garbage tests).
    pub fn raw(&mut self, bytes: &[u8]) -> anyhow::Result<Reply> {
        let peer = self.peer.clone();
        let stream = self.stream.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|e| self.io_error(e, "sending to"))
            .with_context(|| format!("the request did not reach {peer}"))?;
        self.read_reply()
    }

    /// Reads the next reply line (after [`Client::raw`] sent a request in
    /// pieces, say).
    pub fn read_reply(&mut self) -> anyhow::Result<Reply> {
        loop {
            let mut line = Vec::new();
            let read = (&mut self.stream)
                .take(MAX_REPLY)
                .read_until(b'\n', &mut line)
                .map_err(|e| self.io_error(e, "waiting for a reply from"))?;
            if read == 0 {
                bail!(
                    "{} closed the connection without a reply: {HUNG_UP}",
                    self.peer
                );
            }
            if !line.ends_with(b"\n") && read as u64 >= MAX_REPLY {
                bail!(
                    "the reply from {} is longer than {MAX_REPLY} bytes",
                    self.peer
                );
            }
            let text = String::from_utf8_lossy(&line);
            match Response::decode(&text) {
                Some(response) => return Ok(response.into()),
                None if self.skip_noise => continue,
                None => bail!(
                    "{} sent `{}`, not a reply (`ok …` or `err …`): is this a graft control port?",
                    self.peer,
                    text.trim_end().chars().take(80).collect::<String>()
                ),
            }
        }
    }

    fn io_error(&self, error: std::io::Error, doing: &str) -> anyhow::Error {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, TimedOut, WouldBlock};
        match error.kind() {
            ConnectionReset | ConnectionAborted => {
                anyhow::anyhow!("{} reset the connection: {HUNG_UP}", self.peer)
            }
            TimedOut | WouldBlock => anyhow::anyhow!(
                "timed out {doing} {} (under TCG a load can take a while; \
                 the limit is {} s)",
                self.peer,
                READ_TIMEOUT.as_secs()
            ),
            _ => anyhow::Error::new(error).context(format!("error {doing} {}", self.peer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_control::Decoder;
    use std::net::TcpListener;

    /// A fake image: decodes requests with the real `Decoder` and answers
    /// each with `answer`; returns what it decoded.
    fn fake_image(
        answer: fn(&Command) -> Response,
    ) -> (String, std::thread::JoinHandle<Vec<Command>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut decoder = Decoder::new();
            let mut seen = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    return seen;
                }
                let mut input = &buf[..n];
                while let Some(result) = decoder.decode(&mut input) {
                    let response = match &result {
                        Ok(command) => answer(command),
                        Err(error) => Response::Err(error.message.clone()),
                    };
                    stream.write_all(&response.encode()).unwrap();
                    if let Ok(command) = result {
                        seen.push(command);
                    }
                }
            }
        });
        (addr, server)
    }

    fn echo_shape(command: &Command) -> Response {
        match command {
            Command::Load { point, envelope }
            | Command::Replace {
                point, envelope, ..
            } => Response::Ok(format!(
                r#"{{"graft":3,"point":"{point}","bytes":{}}}"#,
                envelope.len()
            )),
            Command::Unload { graft: 9, .. } => Response::Err("no graft 9 at net.rx".into()),
            Command::Unload { point, graft } => Response::Ok(format!(
                r#"{{"graft":{graft},"point":"{point}","revocation":"clean"}}"#
            )),
            Command::List => Response::Ok(r#"{"grafts":[],"points":[]}"#.into()),
            Command::Stats { point } => Response::Ok(format!(r#"{{"point":"{point:?}"}}"#)),
            Command::Log => Response::Ok(r#"{"faults":[]}"#.into()),
            Command::LoadConfirmed { .. } | Command::Confirm { .. } => {
                Response::Err("not in this fake".into())
            }
        }
    }

    #[test]
    fn requests_reach_the_decoder_intact_and_replies_are_parsed() {
        let (addr, server) = fake_image(echo_shape);
        let mut client = Client::connect(&addr).unwrap();
        let envelope: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let reply = client.load("net.rx", &envelope).unwrap();
        assert_eq!(reply.json().unwrap()["bytes"], 3000);
        assert!(client.replace("net.rx", 3, b"\n\n").unwrap().is_ok());
        assert_eq!(
            client.unload("net.rx", 3).unwrap().json().unwrap()["revocation"],
            "clean"
        );
        assert_eq!(
            client.unload("net.rx", 9).unwrap(),
            Reply::Err("no graft 9 at net.rx".into())
        );
        assert!(client.list().unwrap().is_ok());
        assert!(client.stats(Some("net.rx")).unwrap().is_ok());
        assert!(client.stats(None).unwrap().is_ok());
        assert!(client.log().unwrap().is_ok());
        let garbage = client.raw(b"fly me to the moon\n").unwrap();
        assert!(
            garbage
                .clone()
                .into_result()
                .unwrap_err()
                .contains("unknown command")
        );
        drop(client);
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                Command::Load {
                    point: "net.rx".into(),
                    envelope
                },
                Command::Replace {
                    point: "net.rx".into(),
                    graft: 3,
                    envelope: b"\n\n".to_vec()
                },
                Command::Unload {
                    point: "net.rx".into(),
                    graft: 3
                },
                Command::Unload {
                    point: "net.rx".into(),
                    graft: 9
                },
                Command::List,
                Command::Stats {
                    point: Some("net.rx".into())
                },
                Command::Stats { point: None },
                Command::Log,
            ]
        );
    }

    #[test]
    fn a_bad_point_name_is_refused_before_sending() {
        let error = encode(&Command::Unload {
            point: "net rx".into(),
            graft: 1,
        })
        .unwrap_err();
        assert!(format!("{error}").contains("not a graft point name"));
    }

    #[test]
    fn a_refused_connection_says_how_to_start_an_image() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The listener is gone: nothing listens on `port` now.
        let error = Client::connect(&format!("127.0.0.1:{port}"))
            .err()
            .expect("nothing listens");
        let message = format!("{error:#}");
        assert!(message.contains("no image listening"), "{message}");
        assert!(message.contains("cargo xtask run"), "{message}");
    }

    #[test]
    fn a_hang_up_and_a_non_reply_are_clear_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            let mut line = [0u8; 5];
            first.read_exact(&mut line).unwrap();
            drop(first);
            let (mut second, _) = listener.accept().unwrap();
            second.read_exact(&mut line).unwrap();
            second.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        });
        let mut client = Client::connect(&addr).unwrap();
        let error = format!("{:#}", client.list().unwrap_err());
        assert!(error.contains("closed the connection"), "{error}");
        let mut client = Client::connect(&addr).unwrap();
        let error = format!("{:#}", client.list().unwrap_err());
        assert!(error.contains("not a reply"), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn over_a_console_log_lines_are_skipped() {
        // What a serial console might carry: log output, then the reply.
        let console = b"[  1.204] net: link up\nok {\"faults\":[]}\n".to_vec();
        let stream = Duplex {
            reader: std::io::Cursor::new(console),
            writer: Vec::new(),
        };
        let mut client = Client::over(stream);
        assert_eq!(client.log().unwrap(), Reply::Ok(r#"{"faults":[]}"#.into()));
        assert_eq!(client.get_mut().writer, b"log\n");
        let error = format!("{:#}", client.list().unwrap_err());
        assert!(error.contains("closed the connection"), "{error}");
    }
}
