//! HTTP request heads for the `http` image: [`http::request::parse`].
//!
//! Modes: (0) raw bytes, parsed as the server does, request after request,
//! under the default limits or small ones; (1) a request built from parts
//! (method, target, version, headers, body length), whose outcome is known
//! beforehand and must be what the parser says.
//!
//! For every request parsed: its head is within the bytes and the limits,
//! its target is origin-form and taken from the head, the head alone
//! parses the same, and a shorter prefix of it is incomplete. A rejection
//! carries one of the statuses the server documents; an incomplete head is
//! below the head limit.

use arbitrary::Unstructured;
use http::request::{Limits, Method, Parsed, Request, parse};
use http::response::Status;

use super::mode;

pub fn check(data: &[u8]) {
    match mode(data, 2) {
        (0, bytes) => stream(bytes),
        (_, bytes) => built(bytes),
    }
}

fn limits(pick: u8) -> Limits {
    match pick % 2 {
        0 => Limits::default(),
        _ => Limits {
            max_head: 64 + usize::from(pick),
            max_body: usize::from(pick),
        },
    }
}

fn stream(bytes: &[u8]) {
    let limits = limits(bytes.first().copied().unwrap_or(0));
    let mut rest = bytes;
    loop {
        match parse(rest, &limits) {
            Parsed::Incomplete => {
                assert!(
                    rest.len() < limits.max_head,
                    "{} bytes still incomplete",
                    rest.len()
                );
                return;
            }
            Parsed::Rejected(rejection) => {
                let allowed = [
                    Status::BadRequest,
                    Status::MethodNotAllowed,
                    Status::PayloadTooLarge,
                    Status::HeaderFieldsTooLarge,
                ];
                assert!(
                    allowed.contains(&rejection.status),
                    "{:?}",
                    rejection.status
                );
                return; // the server answers and closes
            }
            Parsed::Request(request) => {
                request_holds(rest, &limits, &request);
                let consumed =
                    request.head_len + (rest.len() - request.head_len).min(request.body_len);
                rest = &rest[consumed..];
            }
        }
    }
}

fn request_holds(bytes: &[u8], limits: &Limits, request: &Request) {
    let head = request.head_len;
    assert!(
        head >= 1 && head <= bytes.len() && head <= limits.max_head,
        "head of {head} bytes"
    );
    assert!(
        request.body_len <= limits.max_body,
        "body of {} bytes",
        request.body_len
    );
    assert!(
        request.target.starts_with('/'),
        "target {:?}",
        request.target
    );
    let target = request.target.as_bytes();
    assert!(
        bytes[..head].windows(target.len()).any(|w| w == target),
        "the target is not from the head"
    );
    assert_eq!(
        parse(&bytes[..head], limits),
        Parsed::Request(*request),
        "the head alone"
    );
    for cut in [head - 1, head / 2] {
        assert_eq!(
            parse(&bytes[..cut], limits),
            Parsed::Incomplete,
            "a prefix of {cut} bytes"
        );
    }
}

const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
const PATH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&%";

fn word(u: &mut Unstructured, chars: &[u8], max: usize) -> arbitrary::Result<String> {
    let len = u.int_in_range(1..=max)?;
    (0..len)
        .map(|_| u.choose(chars).map(|&c| char::from(c)))
        .collect()
}

fn built(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok(expected) = build(&mut u) else {
        return;
    };
    let (wire, outcome) = expected;
    let got = parse(&wire, &Limits::default());
    match (outcome, got) {
        (Err(status), Parsed::Rejected(r)) => {
            assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&wire))
        }
        (Ok((method, target, keep_alive, body_len)), Parsed::Request(r)) => assert_eq!(
            (r.method, r.target, r.keep_alive, r.head_len, r.body_len),
            (method, target.as_str(), keep_alive, wire.len(), body_len),
            "{:?}",
            String::from_utf8_lossy(&wire)
        ),
        (outcome, got) => panic!(
            "{:?}: expected {outcome:?}, got {got:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}

type Outcome = Result<(Method, String, bool, usize), Status>;

/// A request head and what the parser must make of it.
fn build(u: &mut Unstructured) -> arbitrary::Result<(Vec<u8>, Outcome)> {
    let methods = [
        ("GET", Some(Method::Get)),
        ("HEAD", Some(Method::Head)),
        ("POST", None),
        ("BREW", None),
    ];
    let (name, method) = *u.choose(&methods)?;
    let target = format!("/{}", word(u, PATH, 64)?);
    let minor: u8 = u.int_in_range(0..=1)?;
    let host: bool = u.arbitrary()?;
    let body: Option<usize> = if u.arbitrary()? {
        Some(u.int_in_range(0..=100_000)?)
    } else {
        None
    };
    let connection = *u.choose(&[
        None,
        Some("close"),
        Some("keep-alive"),
        Some("Upgrade, Close"),
    ])?;
    let mut head = format!("{name} {target} HTTP/1.{minor}\r\n");
    let extra = u.int_in_range(0..=8)?;
    for _ in 0..extra {
        head.push_str(&format!(
            "X-{}: {}\r\n",
            word(u, TOKEN, 16)?,
            word(u, PATH, 32)?
        ));
    }
    if host {
        head.push_str("Host: example.org\r\n");
    }
    if let Some(len) = body {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if let Some(connection) = connection {
        head.push_str(&format!("Connection: {connection}\r\n"));
    }
    head.push_str("\r\n");
    let keep_alive = match connection {
        Some("keep-alive") => true,
        Some(_) => false,
        None => minor == 1,
    };
    let body_len = body.unwrap_or(0);
    let outcome = match method {
        None => Err(Status::MethodNotAllowed),
        Some(_) if minor == 1 && !host => Err(Status::BadRequest),
        Some(_) if body_len > Limits::default().max_body => Err(Status::PayloadTooLarge),
        Some(method) => Ok((method, target, keep_alive, body_len)),
    };
    Ok((head.into_bytes(), outcome))
}
