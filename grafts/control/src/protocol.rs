//! The control protocol: one request line, for `load`/`replace` followed by
//! a counted binary body (a signed envelope), and one response line.
//!
//! ```text
//! load <point> <bytes>\n<envelope>        → ok {"graft":3,"point":"net.rx",...}
//! load <point> <bytes> confirm=<ms>\n<env> → ok {...,"confirm_ms":30000}
//! confirm <graft>                         → ok {"graft":3,"confirmed":true}
//! replace <point> <graft> <bytes>\n<env>  → ok {...}
//! unload <point> <graft>                  → ok {...}
//! list | stats [<point>] | log            → ok <json>
//! anything else                           → err <message>
//! ```
//!
//! A confirmed load ("commit confirmed", as in network gear) installs the
//! graft on probation: unless `confirm <graft>` arrives within the given
//! milliseconds (1 to [`MAX_CONFIRM_MS`]), the image unloads it by itself
//! and records why in its fault log. An operator who loses the image's
//! network to a bad graft gets it back without doing anything.
//!
//! The same bytes work over TCP and over the serial console. Limits: a
//! request line is at most [`MAX_LINE`] bytes, a body at most
//! [`MAX_ENVELOPE`](crate::envelope::MAX_ENVELOPE); a body length over the
//! limit cannot be skipped safely, so it ends the session
//! ([`ProtocolError::fatal`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::envelope::MAX_ENVELOPE;

/// Longest request line.
pub const MAX_LINE: usize = 256;

/// Longest probation of a confirmed load: an hour.
pub const MAX_CONFIRM_MS: u64 = 3_600_000;

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Load {
        point: String,
        envelope: Vec<u8>,
    },
    /// A load that the image undoes unless [`Command::Confirm`] arrives
    /// within `within_ms`.
    LoadConfirmed {
        point: String,
        envelope: Vec<u8>,
        within_ms: u64,
    },
    /// Keeps a graft loaded by [`Command::LoadConfirmed`].
    Confirm {
        graft: u32,
    },
    Replace {
        point: String,
        graft: u32,
        envelope: Vec<u8>,
    },
    Unload {
        point: String,
        graft: u32,
    },
    List,
    Stats {
        point: Option<String>,
    },
    Log,
}

impl Command {
    /// The request's bytes on the wire, as [`Decoder`] reads them (a
    /// client's side; the point name is sent as given).
    pub fn encode(&self) -> Vec<u8> {
        let with_body = |line: String, body: &[u8]| {
            let mut bytes = line.into_bytes();
            bytes.extend_from_slice(body);
            bytes
        };
        match self {
            Command::Load { point, envelope } => with_body(
                alloc::format!("load {point} {}\n", envelope.len()),
                envelope,
            ),
            Command::LoadConfirmed {
                point,
                envelope,
                within_ms,
            } => with_body(
                alloc::format!("load {point} {} confirm={within_ms}\n", envelope.len()),
                envelope,
            ),
            Command::Confirm { graft } => alloc::format!("confirm {graft}\n").into_bytes(),
            Command::Replace {
                point,
                graft,
                envelope,
            } => with_body(
                alloc::format!("replace {point} {graft} {}\n", envelope.len()),
                envelope,
            ),
            Command::Unload { point, graft } => {
                alloc::format!("unload {point} {graft}\n").into_bytes()
            }
            Command::List => b"list\n".to_vec(),
            Command::Stats { point: None } => b"stats\n".to_vec(),
            Command::Stats { point: Some(point) } => alloc::format!("stats {point}\n").into_bytes(),
            Command::Log => b"log\n".to_vec(),
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub message: String,
    /// The stream cannot be resynchronised: close the session.
    pub fatal: bool,
}

impl ProtocolError {
    fn new(message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            message: message.into(),
            fatal: false,
        }
    }
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Ok(String),
    Err(String),
}

impl Response {
    /// The bytes on the wire (one line; newlines in the text are escaped).
    pub fn encode(&self) -> Vec<u8> {
        let (tag, text) = match self {
            Response::Ok(text) => ("ok", text),
            Response::Err(text) => ("err", text),
        };
        let mut line = String::with_capacity(tag.len() + text.len() + 2);
        line.push_str(tag);
        line.push(' ');
        line.push_str(&text.replace('\n', "\\n"));
        line.push('\n');
        line.into_bytes()
    }

    /// Parses a response line (the client side).
    pub fn decode(line: &str) -> Option<Response> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (tag, text) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "ok" => Some(Response::Ok(text.to_string())),
            "err" => Some(Response::Err(text.to_string())),
            _ => None,
        }
    }
}

enum State {
    Line,
    /// A load/replace line was read; its body is being collected.
    Body {
        header: Header,
        remaining: usize,
    },
    /// An over-long line is being discarded up to its newline.
    Discard,
}

#[derive(Clone)]
enum Header {
    Load { point: String, confirm: Option<u64> },
    Replace { point: String, graft: u32 },
}

/// Turns a byte stream into [`Command`]s.
pub struct Decoder {
    state: State,
    buffer: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

fn point_name(word: Option<&str>) -> Result<String, ProtocolError> {
    let name = word.ok_or_else(|| ProtocolError::new("missing graft point name"))?;
    if crate::envelope::valid_point_name(name.as_bytes()) {
        Ok(name.to_string())
    } else {
        Err(ProtocolError::new("bad graft point name"))
    }
}

fn number<T: core::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, ProtocolError> {
    let word = word.ok_or_else(|| ProtocolError::new(alloc::format!("missing {what}")))?;
    word.parse()
        .map_err(|_| ProtocolError::new(alloc::format!("{what} `{word}` is not a number")))
}

/// `confirm=<ms>` after a load's body length.
fn confirm_ms(word: &str) -> Result<u64, ProtocolError> {
    let fatal = |message: String| ProtocolError {
        message: alloc::format!("{message}; closing"),
        fatal: true,
    };
    let value = word.strip_prefix("confirm=").ok_or_else(|| {
        let shown: String = word.chars().take(32).collect();
        fatal(alloc::format!("unexpected `{shown}` after the body length"))
    })?;
    match value.parse::<u64>() {
        Ok(ms) if (1..=MAX_CONFIRM_MS).contains(&ms) => Ok(ms),
        _ => Err(fatal(alloc::format!(
            "confirm= takes milliseconds, 1 to {MAX_CONFIRM_MS}"
        ))),
    }
}

impl Decoder {
    pub const fn new() -> Decoder {
        Decoder {
            state: State::Line,
            buffer: Vec::new(),
        }
    }

    /// Consumes bytes from `input` and returns the next complete request
    /// (or refusal), or `None` when `input` ran out first.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Command, ProtocolError>> {
        loop {
            match &mut self.state {
                State::Discard => {
                    let newline = input.iter().position(|&b| b == b'\n');
                    let Some(at) = newline else {
                        *input = &[];
                        return None;
                    };
                    *input = &input[at + 1..];
                    self.state = State::Line;
                    return Some(Err(ProtocolError::new(alloc::format!(
                        "request line longer than {MAX_LINE} bytes"
                    ))));
                }
                State::Body { remaining, .. } => {
                    let take = (*remaining).min(input.len());
                    self.buffer.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    *remaining -= take;
                    if *remaining > 0 {
                        return None;
                    }
                    let State::Body { header, .. } =
                        core::mem::replace(&mut self.state, State::Line)
                    else {
                        unreachable!()
                    };
                    let envelope = core::mem::take(&mut self.buffer);
                    return Some(Ok(match header {
                        Header::Load {
                            point,
                            confirm: None,
                        } => Command::Load { point, envelope },
                        Header::Load {
                            point,
                            confirm: Some(within_ms),
                        } => Command::LoadConfirmed {
                            point,
                            envelope,
                            within_ms,
                        },
                        Header::Replace { point, graft } => Command::Replace {
                            point,
                            graft,
                            envelope,
                        },
                    }));
                }
                State::Line => {
                    let newline = input.iter().position(|&b| b == b'\n');
                    let Some(at) = newline else {
                        if self.buffer.len() + input.len() > MAX_LINE {
                            self.buffer.clear();
                            self.state = State::Discard;
                            continue;
                        }
                        self.buffer.extend_from_slice(input);
                        *input = &[];
                        return None;
                    };
                    if self.buffer.len() + at > MAX_LINE {
                        self.buffer.clear();
                        self.state = State::Discard;
                        continue;
                    }
                    self.buffer.extend_from_slice(&input[..at]);
                    *input = &input[at + 1..];
                    let line = core::mem::take(&mut self.buffer);
                    match self.parse_line(&line) {
                        Ok(Some(command)) => return Some(Ok(command)),
                        Ok(None) => continue, // a body follows
                        Err(error) => return Some(Err(error)),
                    }
                }
            }
        }
    }

    fn parse_line(&mut self, line: &[u8]) -> Result<Option<Command>, ProtocolError> {
        let text = core::str::from_utf8(line)
            .map_err(|_| ProtocolError::new("request line is not text"))?
            .trim_end_matches('\r');
        let mut words = text.split_ascii_whitespace();
        let verb = words.next().unwrap_or("");
        let command = match verb {
            "load" | "replace" => {
                let point = point_name(words.next())?;
                let replaced = match verb {
                    "load" => None,
                    _ => Some(number(words.next(), "graft id")?),
                };
                let length: usize = number(words.next(), "body length")?;
                let header = match replaced {
                    Some(graft) => Header::Replace { point, graft },
                    None => Header::Load {
                        point,
                        confirm: words.next().map(confirm_ms).transpose()?,
                    },
                };
                if let Some(extra) = words.next() {
                    // Refused before the body is read: the body follows,
                    // so the session cannot resynchronise.
                    let shown: String = extra.chars().take(32).collect();
                    return Err(ProtocolError {
                        message: alloc::format!("unexpected `{shown}` after the command; closing"),
                        fatal: true,
                    });
                }
                if length == 0 || length > MAX_ENVELOPE {
                    return Err(ProtocolError {
                        message: alloc::format!(
                            "body length {length} is outside 1..={MAX_ENVELOPE}; closing"
                        ),
                        fatal: true,
                    });
                }
                self.state = State::Body {
                    header,
                    remaining: length,
                };
                return Ok(None);
            }
            "unload" => Command::Unload {
                point: point_name(words.next())?,
                graft: number(words.next(), "graft id")?,
            },
            "confirm" => Command::Confirm {
                graft: number(words.next(), "graft id")?,
            },
            "list" => Command::List,
            "stats" => Command::Stats {
                point: words.next().map(|w| point_name(Some(w))).transpose()?,
            },
            "log" => Command::Log,
            "" => return Err(ProtocolError::new("empty request")),
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(ProtocolError::new(alloc::format!(
                    "unknown command `{shown}` (load, confirm, replace, unload, list, stats, log)"
                )));
            }
        };
        if let Some(extra) = words.next() {
            let shown: String = extra.chars().take(32).collect();
            return Err(ProtocolError::new(alloc::format!(
                "unexpected `{shown}` after the command"
            )));
        }
        Ok(Some(command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut Decoder, mut bytes: &[u8]) -> Vec<Result<Command, ProtocolError>> {
        core::iter::from_fn(|| decoder.decode(&mut bytes)).collect()
    }

    #[test]
    fn every_command_decodes_as_it_was_encoded() {
        let commands = [
            Command::Load {
                point: "net.rx".into(),
                envelope: b"A\nB".to_vec(),
            },
            Command::LoadConfirmed {
                point: "net.rx".into(),
                envelope: b"confirm=1\n".to_vec(),
                within_ms: 30_000,
            },
            Command::Confirm { graft: 4 },
            Command::Replace {
                point: "p".into(),
                graft: 7,
                envelope: b"xyz".to_vec(),
            },
            Command::Unload {
                point: "sched.pick".into(),
                graft: 3,
            },
            Command::List,
            Command::Stats { point: None },
            Command::Stats {
                point: Some("cache.evict".into()),
            },
            Command::Log,
        ];
        let stream: Vec<u8> = commands.iter().flat_map(Command::encode).collect();
        let decoded: Vec<Command> = all(&mut Decoder::new(), &stream)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(decoded, commands);
    }

    #[test]
    fn commands_decode_even_when_split_byte_by_byte() {
        let stream =
            b"list\nload net.rx 5\nHELLOstats net.rx\r\nunload net.rx 3\nreplace p 2 1\nZlog\n";
        let expected = [
            Command::List,
            Command::Load {
                point: "net.rx".into(),
                envelope: b"HELLO".to_vec(),
            },
            Command::Stats {
                point: Some("net.rx".into()),
            },
            Command::Unload {
                point: "net.rx".into(),
                graft: 3,
            },
            Command::Replace {
                point: "p".into(),
                graft: 2,
                envelope: b"Z".to_vec(),
            },
            Command::Log,
        ];
        let whole: Vec<_> = all(&mut Decoder::new(), stream)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(whole, expected);
        let mut decoder = Decoder::new();
        let mut one_by_one = Vec::new();
        for byte in stream {
            one_by_one.extend(all(&mut decoder, core::slice::from_ref(byte)));
        }
        assert_eq!(
            one_by_one
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn garbage_gets_an_error_and_the_next_request_still_works() {
        let mut decoder = Decoder::new();
        let mut long = alloc::vec![b'x'; MAX_LINE * 3];
        long.push(b'\n');
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\xff\xfe\n");
        stream.extend_from_slice(b"fly me to the moon\n");
        stream.extend_from_slice(b"unload net.rx notanumber\n");
        stream.extend_from_slice(b"load bad/name 3\n");
        stream.extend_from_slice(&long);
        stream.extend_from_slice(b"list extra\n");
        stream.extend_from_slice(b"list\n");
        let results = all(&mut decoder, &stream);
        assert_eq!(results.len(), 7);
        assert!(
            results[..6]
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| !e.fatal))
        );
        assert_eq!(results[6], Ok(Command::List));
    }

    #[test]
    fn a_bad_confirmation_time_is_refused_and_fatal() {
        for line in [
            "load p 3 confirm=0\n",
            "load p 3 confirm=3600001\n",
            "load p 3 confirm=soon\n",
            "load p 3 within=5\n",
            "load p 3 confirm=5 more\n",
            "replace p 1 3 confirm=5\n",
        ] {
            let results = all(&mut Decoder::new(), line.as_bytes());
            assert_eq!(results.len(), 1, "{line}");
            assert!(results[0].as_ref().is_err_and(|e| e.fatal), "{line}");
        }
        assert_eq!(
            all(&mut Decoder::new(), b"confirm x\nconfirm 2\n")
                .into_iter()
                .map(|r| r.is_ok())
                .collect::<Vec<_>>(),
            [false, true]
        );
    }

    #[test]
    fn an_oversized_body_is_fatal() {
        let line = alloc::format!("load p {}\n", MAX_ENVELOPE + 1);
        let results = all(&mut Decoder::new(), line.as_bytes());
        assert!(results[0].as_ref().is_err_and(|e| e.fatal));
    }

    #[test]
    fn responses_are_single_lines() {
        let line = Response::Err("two\nlines".into()).encode();
        assert_eq!(line, b"err two\\nlines\n");
        assert_eq!(
            Response::decode(core::str::from_utf8(&Response::Ok("{}".into()).encode()).unwrap()),
            Some(Response::Ok("{}".into()))
        );
        assert_eq!(Response::decode("what"), None);
    }
}
