//! One management session, independent of its transport: bytes in,
//! response lines out. The TCP server and the serial console both drive a
//! [`Session`]; tests drive it directly.

use alloc::vec::Vec;

use graft_control::{Decoder, Response};

use graft_host::GraftHost;

/// A client's session: the protocol decoder's state between reads.
#[derive(Default)]
pub struct Session {
    decoder: Decoder,
}

/// What the transport should do after [`Session::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep reading.
    Continue,
    /// The stream cannot be resynchronised (an impossible body length):
    /// send what was written, then close.
    Close,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Decodes every complete request in `input`, carries each out on
    /// `host` and appends its response line to `out`. A partial request
    /// waits for the next call.
    pub fn feed(&mut self, host: &mut GraftHost, mut input: &[u8], out: &mut Vec<u8>) -> Next {
        while let Some(request) = self.decoder.decode(&mut input) {
            match request {
                Ok(command) => out.extend_from_slice(&host.handle(command).encode()),
                Err(error) => {
                    out.extend_from_slice(&Response::Err(error.message).encode());
                    if error.fatal {
                        return Next::Close;
                    }
                }
            }
        }
        Next::Continue
    }
}
