//! RESP, the Redis protocol, at the border: bytes from a client become a
//! list of arguments (or a [`ProtocolError`]) here and nowhere else, and
//! replies become bytes.
//!
//! Requests are RESP2 multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what
//! every client library and `redis-benchmark` send) or inline commands
//! (`PING\r\n`, what a human types into `nc`). Sizes are bounded before
//! anything is allocated: a frame announcing more than [`MAX_ARGS`]
//! arguments or a bulk of more than [`MAX_BULK`] bytes is an error, as in
//! Redis, after which the server closes that connection.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Largest bulk string (a key or value), bytes.
pub const MAX_BULK: usize = 1 << 20;
/// Most arguments in one command.
pub const MAX_ARGS: usize = 64 * 1024;
/// Longest inline command or length line, bytes.
pub const MAX_INLINE: usize = 64 * 1024;

/// A malformed request (the client's fault). The connection is closed
/// after the error is sent; the server is unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    ExpectedDollar(u8),
    /// A bulk's bytes are not followed by CRLF (its length lies).
    MissingCrlf,
    TooBigInline,
    TooBigCount,
    UnbalancedQuotes,
}

impl ProtocolError {
    /// The error line Redis sends for it (without `-` and CRLF).
    pub fn message(self) -> String {
        let mut text = String::from("ERR Protocol error: ");
        let _ = match self {
            ProtocolError::InvalidMultibulkLength => write!(text, "invalid multibulk length"),
            ProtocolError::InvalidBulkLength => write!(text, "invalid bulk length"),
            ProtocolError::ExpectedDollar(got) => {
                write!(
                    text,
                    "expected '$', got '{}'",
                    char::from(got).escape_default()
                )
            }
            ProtocolError::MissingCrlf => write!(text, "expected CRLF after the bulk string"),
            ProtocolError::TooBigInline => write!(text, "too big inline request"),
            ProtocolError::TooBigCount => write!(text, "too big mbulk count string"),
            ProtocolError::UnbalancedQuotes => write!(text, "unbalanced quotes in request"),
        };
        text
    }
}

/// One request: its arguments (the command name first) and how many bytes
/// of the buffer it used. An empty request (`*0`, a blank line) has no
/// arguments and is skipped by the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<Vec<u8>>,
    pub consumed: usize,
}

/// Parses the first request in `buf`: `Ok(None)` if it is not all there yet.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf),
        Some(_) => parse_inline(buf),
    }
}

/// The line starting at `at` (without CRLF) and where the next one starts.
fn line(
    buf: &[u8],
    at: usize,
    too_long: ProtocolError,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[at..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) if end > MAX_INLINE => Err(too_long),
        Some(end) => {
            let text = &rest[..end];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Some((text, at + end + 1)))
        }
        None if rest.len() > MAX_INLINE => Err(too_long),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Option<i64> {
    core::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_multibulk(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
    let Some((head, start)) = line(buf, 0, ProtocolError::TooBigCount)? else {
        return Ok(None);
    };
    let count = number(&head[1..]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > MAX_ARGS as i64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let count = count.max(0) as usize;
    // First pass: is all of it here, and well formed? (Nothing is copied
    // until it is; parsing again once more bytes arrive is cheap.)
    let mut at = start;
    for _ in 0..count {
        match bulk(buf, at)? {
            Some((_, next)) => at = next,
            None => return Ok(None),
        }
    }
    let mut args = Vec::with_capacity(count);
    let mut at = start;
    for _ in 0..count {
        let Some((span, next)) = bulk(buf, at)? else {
            unreachable!("checked by the first pass");
        };
        args.push(buf[span].to_vec());
        at = next;
    }
    Ok(Some(Request { args, consumed: at }))
}

/// The bulk string at `at`: its bytes and where the next one starts.
fn bulk(buf: &[u8], at: usize) -> Result<Option<(core::ops::Range<usize>, usize)>, ProtocolError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    if kind != b'$' {
        return Err(ProtocolError::ExpectedDollar(kind));
    }
    let Some((head, next)) = line(buf, at, ProtocolError::TooBigCount)? else {
        return Ok(None);
    };
    let len = number(&head[1..])
        .filter(|&n| (0..=MAX_BULK as i64).contains(&n))
        .ok_or(ProtocolError::InvalidBulkLength)? as usize;
    let Some(end) = buf.get(next + len..next + len + 2) else {
        return Ok(None);
    };
    if end != b"\r\n" {
        return Err(ProtocolError::MissingCrlf);
    }
    Ok(Some((next..next + len, next + len + 2)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
    let Some((text, consumed)) = line(buf, 0, ProtocolError::TooBigInline)? else {
        return Ok(None);
    };
    let mut args = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut quote: Option<u8> = None;
    for &byte in text {
        match (quote, byte) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), b) => current.get_or_insert_default().push(b),
            (None, b'"' | b'\'') => {
                quote = Some(byte);
                current.get_or_insert_default();
            }
            (None, b' ' | b'\t') => args.extend(current.take()),
            (None, b) => current.get_or_insert_default().push(b),
        }
    }
    if quote.is_some() {
        return Err(ProtocolError::UnbalancedQuotes);
    }
    args.extend(current);
    Ok(Some(Request { args, consumed }))
}

/// A reply, in RESP2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(&'static str),
    /// `-ERR ...` (the text includes the error code word).
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    /// The null bulk string (`$-1`).
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK")
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// Appends the reply's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => line_out(out, b'+', text.as_bytes()),
            Reply::Error(text) => {
                // An error line cannot hold a line break.
                let clean: Vec<u8> = text
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                    .collect();
                line_out(out, b'-', &clean);
            }
            Reply::Integer(n) => integer_out(out, b':', *n),
            Reply::Bulk(data) => {
                integer_out(out, b'$', data.len() as i64);
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                integer_out(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn line_out(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn integer_out(out: &mut Vec<u8>, kind: u8, n: i64) {
    // By hand: `write!` costs more than the rest of a small reply.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push(kind);
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_requests_and_pipelines() {
        let wire = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let first = parse(wire).unwrap().unwrap();
        assert_eq!(first.args, args(&["GET", "k"]));
        assert_eq!(first.consumed, 20);
        let second = parse(&wire[first.consumed..]).unwrap().unwrap();
        assert_eq!(second.args, args(&["PING"]));
        assert_eq!(first.consumed + second.consumed, wire.len());
        // Binary-safe: CRLF inside a bulk is data.
        let binary = parse(b"*1\r\n$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(binary.args, vec![b"a\r\nb".to_vec()]);
        assert_eq!(parse(b"*0\r\n").unwrap().unwrap().args.len(), 0);
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let wire = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        for end in 0..wire.len() {
            assert_eq!(parse(&wire[..end]), Ok(None), "prefix {end}");
        }
        assert!(parse(wire).unwrap().is_some());
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(parse(b"*x\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(
            parse(b"*99999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n+OK\r\n"),
            Err(ProtocolError::ExpectedDollar(b'+'))
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$2000000\r\n"),
            Err(ProtocolError::InvalidBulkLength),
            "a value over the limit is refused before it arrives"
        );
        assert_eq!(
            parse(&[b'A'; MAX_INLINE + 1]),
            Err(ProtocolError::TooBigInline)
        );
        assert_eq!(parse(b"SET 'a\r\n"), Err(ProtocolError::UnbalancedQuotes));
        // The bulk's length lies: what follows it is not CRLF.
        for lie in [
            &b"*1\r\n$4\r\nPINGxx"[..],
            b"*1\r\n$3\r\nPING\r\n",
            b"*1\r\n$4\r\nPING\n\r",
        ] {
            assert_eq!(parse(lie), Err(ProtocolError::MissingCrlf), "{lie:?}");
        }
        assert!(
            ProtocolError::MissingCrlf
                .message()
                .starts_with("ERR Protocol error: ")
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'+').message(),
            "ERR Protocol error: expected '$', got '+'"
        );
    }

    #[test]
    fn inline_commands_split_on_spaces_and_quotes() {
        let request = parse(b"set  k \"two words\"\r\nrest").unwrap().unwrap();
        assert_eq!(request.args, args(&["set", "k", "two words"]));
        assert_eq!(request.consumed, 20);
        assert_eq!(parse(b"PING\n").unwrap().unwrap().args, args(&["PING"]));
        assert_eq!(parse(b"\r\n").unwrap().unwrap().args.len(), 0);
        assert_eq!(parse(b"PIN"), Ok(None));
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = Vec::new();
        Reply::ok().encode(&mut out);
        Reply::error("ERR bad\r\nthing").encode(&mut out);
        Reply::Integer(-3).encode(&mut out);
        Reply::Integer(i64::MIN).encode(&mut out);
        Reply::Integer(0).encode(&mut out);
        Reply::Bulk(b"hi".to_vec()).encode(&mut out);
        Reply::Nil.encode(&mut out);
        Reply::Array(vec![Reply::Integer(1), Reply::Nil]).encode(&mut out);
        assert_eq!(
            out,
            b"+OK\r\n-ERR bad  thing\r\n:-3\r\n:-9223372036854775808\r\n:0\r\n$2\r\nhi\r\n\
              $-1\r\n*2\r\n:1\r\n$-1\r\n"
        );
    }
}
