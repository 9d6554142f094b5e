//! The control line protocol: [`Decoder`] on a byte stream, and
//! [`Response::decode`] on a response line.
//!
//! Modes: (0) raw bytes, decoded whole and again split into chunks, which
//! must give the same results, every command re-encoded decoding to
//! itself; (1) a list of well-formed commands, encoded as one stream, which
//! must decode to the same list; (2) response lines, raw and round-tripped.

use arbitrary::Unstructured;
use graft_control::protocol::MAX_CONFIRM_MS;
use graft_control::{Command, Decoder, ProtocolError, Response};

use super::{mode, point_name};

pub fn check(data: &[u8]) {
    match mode(data, 3) {
        (0, bytes) => stream(bytes),
        (1, bytes) => round_trip(bytes),
        (_, bytes) => responses(bytes),
    }
}

fn decode_all(decoder: &mut Decoder, mut input: &[u8]) -> Vec<Result<Command, ProtocolError>> {
    let mut out = Vec::new();
    // Each call consumes input or returns `None`: at most one result per
    // byte, plus one.
    let bound = input.len() + 1;
    while let Some(result) = decoder.decode(&mut input) {
        out.push(result);
        assert!(
            out.len() <= bound,
            "the decoder returns results without consuming input"
        );
    }
    assert!(
        input.is_empty(),
        "the decoder stopped before the end of its input"
    );
    out
}

fn stream(bytes: &[u8]) {
    let whole = decode_all(&mut Decoder::new(), bytes);
    let chunk = usize::from(bytes.first().copied().unwrap_or(1)).max(1);
    let mut decoder = Decoder::new();
    let split: Vec<_> = bytes
        .chunks(chunk)
        .flat_map(|piece| decode_all(&mut decoder, piece))
        .collect();
    assert_eq!(whole, split, "chunks of {chunk} bytes decode differently");
    for result in whole {
        match result {
            Ok(command) => {
                let again = decode_all(&mut Decoder::new(), &command.encode());
                assert_eq!(again, [Ok(command)], "decode(encode(command))");
            }
            Err(error) => crate::says_what(&error.message, "a refused request"),
        }
    }
}

fn command(u: &mut Unstructured) -> arbitrary::Result<Command> {
    let body = |u: &mut Unstructured| -> arbitrary::Result<Vec<u8>> {
        let len = u.int_in_range(1..=4096usize)?;
        let mut body = u.bytes(len.min(u.len()))?.to_vec();
        if body.is_empty() {
            body.push(b'\n');
        }
        Ok(body)
    };
    Ok(match u.int_in_range(0..=8u8)? {
        0 => Command::Load {
            point: point_name(u)?,
            envelope: body(u)?,
        },
        1 => Command::LoadConfirmed {
            point: point_name(u)?,
            envelope: body(u)?,
            within_ms: u.int_in_range(1..=MAX_CONFIRM_MS)?,
        },
        2 => Command::Confirm {
            graft: u.arbitrary()?,
        },
        3 => Command::Replace {
            point: point_name(u)?,
            graft: u.arbitrary()?,
            envelope: body(u)?,
        },
        4 => Command::Unload {
            point: point_name(u)?,
            graft: u.arbitrary()?,
        },
        5 => Command::List,
        6 => Command::Stats { point: None },
        7 => Command::Stats {
            point: Some(point_name(u)?),
        },
        _ => Command::Log,
    })
}

fn round_trip(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let mut commands = Vec::new();
    while !u.is_empty() && commands.len() < 64 {
        match command(&mut u) {
            Ok(command) => commands.push(command),
            Err(_) => break,
        }
    }
    let stream: Vec<u8> = commands.iter().flat_map(Command::encode).collect();
    let decoded: Vec<_> = decode_all(&mut Decoder::new(), &stream);
    let expected: Vec<_> = commands.into_iter().map(Ok).collect();
    assert_eq!(decoded, expected, "decode(encode(commands))");
}

fn responses(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.split_inclusive('\n') {
        if let Some(response) = Response::decode(line) {
            let wire = response.encode();
            assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
            assert_eq!(wire.last(), Some(&b'\n'), "one line");
            // Response texts (JSON, messages) hold no line breaks; for
            // those, the encoding is exact.
            let (Response::Ok(t) | Response::Err(t)) = &response;
            if !t.contains(['\r', '\n']) {
                let line = core::str::from_utf8(&wire).expect("text in, text out");
                assert_eq!(
                    Response::decode(line),
                    Some(response),
                    "decode(encode(response))"
                );
            }
        }
    }
}
