//! The border: bytes from a client become a typed [`Request`] or a
//! [`Rejection`] with the status to answer, never anything in between.

use crate::response::Status;

/// Most header fields a request may have (more: 431).
pub const MAX_HEADERS: usize = 48;

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus header fields, bytes (more: 431).
    pub max_head: usize,
    /// Request body, bytes (more: 413). GET and HEAD bodies are read and
    /// discarded.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// The methods this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// A valid request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The path and query, origin-form (starts with `/`).
    pub target: &'a str,
    /// Whether the client wants the connection kept open after this one.
    pub keep_alive: bool,
    /// Bytes of the head, up to and including the blank line.
    pub head_len: usize,
    /// Bytes of body that follow the head (to be discarded).
    pub body_len: usize,
}

/// A request answered with an error status, after which the connection
/// closes (what follows it in the stream cannot be trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: Status,
}

/// What the bytes received so far amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A complete, valid head.
    Request(Request<'a>),
    /// More bytes are needed.
    Incomplete,
    /// Answer with this status and close.
    Rejected(Rejection),
}

fn reject<'a>(status: Status) -> Parsed<'a> {
    Parsed::Rejected(Rejection { status })
}

/// Parses the head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Complete(_)) => return reject(Status::HeaderFieldsTooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return reject(Status::HeaderFieldsTooLarge);
        }
        Ok(httparse::Status::Partial) => return Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return reject(Status::HeaderFieldsTooLarge),
        Err(_) => return reject(Status::BadRequest),
    };
    // httparse fills these in a complete parse.
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return reject(Status::BadRequest);
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return reject(Status::MethodNotAllowed),
    };
    let Some(target) = origin_form(target) else {
        return reject(Status::BadRequest);
    };

    let mut keep_alive = minor >= 1;
    let mut host = false;
    let mut body_len: Option<usize> = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            if host {
                return reject(Status::BadRequest); // RFC 9112 §3.2: exactly one
            }
            host = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let Some(len) = content_length(header.value) else {
                return reject(Status::BadRequest);
            };
            if body_len.is_some_and(|previous| previous != len) {
                return reject(Status::BadRequest);
            }
            body_len = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Bodies with a transfer coding are not accepted by this server.
            return reject(Status::BadRequest);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if minor >= 1 && !host {
        return reject(Status::BadRequest); // HTTP/1.1 requires Host
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > limits.max_body {
        return reject(Status::PayloadTooLarge);
    }
    Parsed::Request(Request {
        method,
        target,
        keep_alive,
        head_len,
        body_len,
    })
}

/// The origin-form of a request target: absolute-form (`http://host/path`)
/// loses its scheme and authority; anything else must start with `/`.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    match rest.find('/') {
        Some(slash) => Some(&rest[slash..]),
        None => Some("/"),
    }
}

/// A Content-Length value: decimal digits only, no sign, no overflow.
fn content_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(bytes: &[u8]) -> Parsed<'_> {
        parse(bytes, &Limits::default())
    }

    fn status(bytes: &[u8]) -> Option<Status> {
        match parse_default(bytes) {
            Parsed::Rejected(r) => Some(r.status),
            _ => None,
        }
    }

    #[test]
    fn a_plain_get() {
        let raw = b"GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\nleftover";
        assert_eq!(
            parse_default(raw),
            Parsed::Request(Request {
                method: Method::Get,
                target: "/index.html?x=1",
                keep_alive: true,
                head_len: raw.len() - b"leftover".len(),
                body_len: 0,
            })
        );
    }

    #[test]
    fn keep_alive_defaults_follow_the_version() {
        let keep = |raw: &[u8]| match parse_default(raw) {
            Parsed::Request(r) => r.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(keep(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!keep(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert_eq!(parse_default(b""), Parsed::Incomplete);
        assert_eq!(parse_default(b"GET / HTTP/1.1\r\nHo"), Parsed::Incomplete);
    }

    #[test]
    fn malformed_requests_are_400() {
        assert_eq!(status(b"GET\r\n\r\n"), Some(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), Some(Status::BadRequest));
        assert_eq!(status(b"\x16\x03\x01\x02\x00"), Some(Status::BadRequest));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some(Status::BadRequest)); // no Host
        assert_eq!(
            status(b"GET foo HTTP/1.0\r\n\r\n"),
            Some(Status::BadRequest)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            Some(Status::BadRequest)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(Status::BadRequest)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(Status::BadRequest)
        );
    }

    #[test]
    fn other_methods_are_405() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"),
            Some(Status::MethodNotAllowed)
        );
        assert_eq!(
            status(b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Status::MethodNotAllowed)
        );
    }

    #[test]
    fn oversized_heads_are_431_and_bodies_413() {
        let limits = Limits {
            max_head: 64,
            max_body: 10,
        };
        let long_line = [b'a'; 100];
        assert_eq!(
            parse(&long_line, &limits),
            Parsed::Rejected(Rejection {
                status: Status::HeaderFieldsTooLarge
            })
        );
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), Some(Status::HeaderFieldsTooLarge));
        assert_eq!(
            parse(
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
                &limits
            ),
            Parsed::Rejected(Rejection {
                status: Status::PayloadTooLarge
            })
        );
    }

    #[test]
    fn absolute_form_targets_become_paths() {
        match parse_default(b"GET http://example.org/a?b HTTP/1.1\r\nHost: example.org\r\n\r\n") {
            Parsed::Request(r) => assert_eq!(r.target, "/a?b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_parsing_is_strict() {
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"+1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }
}
