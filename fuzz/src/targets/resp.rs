//! RESP requests for `kv`: [`kv::resp::parse`], then [`kv::Command::parse`].
//!
//! Modes: (0) a raw byte stream, parsed request by request as the server
//! does; (1) a list of arguments, encoded as a multibulk request (what
//! every client sends), which must parse back to the same arguments.
//!
//! For every request parsed: it used at least one byte and no more than it
//! had, a shorter prefix of it is incomplete rather than something else,
//! its arguments re-encoded as multibulk parse to the same arguments, and
//! the command check either accepts it or gives an error reply Redis
//! clients recognise (`ERR ...`). A protocol error has Redis's message.

use arbitrary::Unstructured;
use kv::Command;
use kv::resp::{self, Reply, Request};

use super::mode;

pub fn check(data: &[u8]) {
    match mode(data, 2) {
        (0, bytes) => stream(bytes),
        (_, bytes) => round_trip(bytes),
    }
}

/// `args` as a multibulk request (a RESP array of bulk strings, which is
/// what a reply of that shape encodes to).
fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    Reply::Array(args.iter().cloned().map(Reply::Bulk).collect()).encode(&mut out);
    out
}

fn stream(mut bytes: &[u8]) {
    loop {
        match resp::parse(bytes) {
            Ok(None) => return,
            Ok(Some(request)) => {
                request_holds(bytes, &request);
                bytes = &bytes[request.consumed..];
            }
            Err(error) => {
                let message = error.message();
                crate::says_what(&message, "a protocol error");
                assert!(message.starts_with("ERR Protocol error: "), "{message}");
                return; // the server closes the connection
            }
        }
    }
}

fn request_holds(bytes: &[u8], request: &Request) {
    let used = request.consumed;
    assert!(
        used >= 1 && used <= bytes.len(),
        "consumed {used} of {}",
        bytes.len()
    );
    // A few shorter prefixes: each one is still waiting for more.
    for cut in [used - 1, used / 2, used.saturating_sub(2)] {
        assert_eq!(
            resp::parse(&bytes[..cut]),
            Ok(None),
            "a prefix of {cut} of {used} bytes is not incomplete"
        );
    }
    let wire = multibulk(&request.args);
    let again = resp::parse(&wire).expect("a multibulk request parses");
    assert_eq!(
        again,
        Some(Request {
            args: request.args.clone(),
            consumed: wire.len()
        }),
        "parse(encode(args))"
    );
    command_holds(&request.args);
}

fn command_holds(args: &[Vec<u8>]) {
    if args.is_empty() {
        return; // the server skips an empty request
    }
    if let Err(error) = Command::parse(args.to_vec()) {
        let mut reply = Vec::new();
        Reply::error(error.0.clone()).encode(&mut reply);
        assert!(error.0.starts_with("ERR "), "{:?}", error.0);
        assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
    }
}

fn round_trip(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let mut args = Vec::new();
    while let Ok(arg) = u.arbitrary::<Vec<u8>>() {
        if u.is_empty() && arg.is_empty() || args.len() >= 64 {
            break;
        }
        args.push(arg);
    }
    let wire = multibulk(&args);
    let request = resp::parse(&wire).expect("a multibulk request parses");
    assert_eq!(
        request,
        Some(Request {
            args: args.clone(),
            consumed: wire.len()
        }),
        "parse(encode(args))"
    );
    command_holds(&args);
}
