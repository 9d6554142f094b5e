//! Packet filter for the `net.rx` event point: `graft_main(len) -> verdict`
//! with the Ethernet frame as context; it passes or drops (the verdicts
//! are the SDK's [`graft_sdk::points::net_rx`] constants). The guard
//! runs the handler only for IPv4/TCP; the handler drops segments to
//! [`BLOCKED_PORT`] and counts them in host counter 0.
#![cfg_attr(target_arch = "wasm32", no_std)]

use graft_sdk::points::net_rx::{DROP, PASS};
use graft_sdk::{context_read, counter_add};

/// The TCP destination port this filter blocks.
pub const BLOCKED_PORT: u16 = 8081;

/// The bytes the guard looks at: Ethernet (14) and the IPv4 header up to
/// its protocol and addresses (20).
const HEAD: usize = 34;
/// The most the handler reads: Ethernet, the longest IPv4 header (60) and
/// TCP's two ports (4), in one accessor call.
const MOST: usize = 14 + 60 + 4;

/// Offset of the TCP header in an IPv4/TCP frame (`frame` holds at least
/// [`HEAD`] bytes), from the IPv4 header length.
fn tcp_offset(frame: &[u8]) -> Option<usize> {
    let is_ipv4 = frame[12] == 0x08 && frame[13] == 0x00;
    let is_tcp = frame[23] == 6;
    (is_ipv4 && is_tcp).then(|| 14 + usize::from(frame[14] & 0x0f) * 4)
}

/// Decides on a TCP destination port (pure: tested on the host).
pub fn verdict_for(port: u16) -> i32 {
    if port == BLOCKED_PORT { DROP } else { PASS }
}

fn is_tcp(len: i32) -> bool {
    if usize::try_from(len).unwrap_or(0) < HEAD {
        return false;
    }
    let mut head = [0u8; HEAD];
    context_read(0, &mut head);
    tcp_offset(&head).is_some()
}

fn filter(len: i32) -> i32 {
    let len = usize::try_from(len).unwrap_or(0).min(MOST);
    if len < HEAD {
        return PASS;
    }
    let mut frame = [0u8; MOST];
    context_read(0, &mut frame[..len]);
    let Some(offset) = tcp_offset(&frame) else {
        return PASS;
    };
    if len < offset + 4 {
        return PASS;
    }
    let verdict = verdict_for(u16::from_be_bytes([frame[offset + 2], frame[offset + 3]]));
    if verdict == DROP {
        counter_add(0, 1);
    }
    verdict
}

graft_sdk::graft_guard!(is_tcp: fn(len: i32));
graft_sdk::graft_main!(filter: fn(len: i32) -> i32);

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_blocked_port_is_dropped() {
        use graft_sdk::points::net_rx::{DROP, PASS};
        assert_eq!(super::verdict_for(8081), DROP);
        assert_eq!(super::verdict_for(80), PASS);
    }
}
