//! The receive path's policy: what happens to a frame before the stack
//! sees it.
//!
//! This is the Exokernel/XDP hook of an image: every received frame is
//! shown to the image's [`RxPolicy`] first, as raw bytes (untrusted: a
//! policy must treat them as an allegation, as [`Summary::parse`] does),
//! and the policy's [`Verdict`] decides whether the stack processes it,
//! it is dropped, or the policy answers it directly from the driver's
//! buffers without the stack. Like the scheduler, the policy is a type
//! parameter chosen per image ([`PassAll`] unless the image says
//! otherwise), so the default costs nothing. In a grafted image the
//! policy is wrapped by `graft_host::rx::GraftRx`, which shows each frame
//! to the handlers loaded on the `net.rx` graft point before this policy
//! decides.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// What to do with one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Pass,
    /// Drop it silently.
    Drop,
    /// Answer it with the frame [`RxPolicy::answer`] writes, and do not
    /// hand it to the stack.
    Answer,
}

/// Decides the fate of each received frame.
pub trait RxPolicy: Default + 'static {
    /// Shown in the boot log.
    const NAME: &'static str;

    /// Looks at a received Ethernet frame.
    fn on_receive(&mut self, frame: &[u8]) -> Verdict;

    /// After [`Verdict::Answer`]: writes the reply frame for `request` into
    /// `reply` (at least 1514 bytes) and returns its length; 0 sends
    /// nothing. Not called when the device has no room to send.
    fn answer(&mut self, request: &[u8], reply: &mut [u8]) -> usize {
        let _ = (request, reply);
        0
    }
}

/// Passes every frame to the stack: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassAll;

impl RxPolicy for PassAll {
    const NAME: &'static str = "pass-all";

    #[inline]
    fn on_receive(&mut self, _frame: &[u8]) -> Verdict {
        Verdict::Pass
    }
}

/// Drops ICMP echo requests (the image does not answer pings); passes the rest.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPing;

impl RxPolicy for NoPing {
    const NAME: &'static str = "no-ping";

    fn on_receive(&mut self, frame: &[u8]) -> Verdict {
        match Summary::parse(frame) {
            Some(Summary {
                protocol: Some(IpProtocol::Icmp),
                icmp_type: Some(8),
                ..
            }) => Verdict::Drop,
            _ => Verdict::Pass,
        }
    }
}

/// Drops TCP segments to the listed destination ports; passes the rest.
/// The compiled-in counterpart of the packet-filter graft (`block=PORT` on
/// the HTTP image's command line), so the two can be measured side by side.
#[derive(Clone, Debug, Default)]
pub struct DropPorts {
    ports: alloc::vec::Vec<u16>,
}

impl DropPorts {
    pub fn new(ports: impl IntoIterator<Item = u16>) -> DropPorts {
        DropPorts {
            ports: ports.into_iter().collect(),
        }
    }
}

impl RxPolicy for DropPorts {
    const NAME: &'static str = "drop-ports";

    fn on_receive(&mut self, frame: &[u8]) -> Verdict {
        if self.ports.is_empty() {
            return Verdict::Pass;
        }
        match Summary::parse(frame) {
            Some(Summary {
                protocol: Some(IpProtocol::Tcp),
                ports: Some((_, destination)),
                ..
            }) if self.ports.contains(&destination) => Verdict::Drop,
            _ => Verdict::Pass,
        }
    }
}

/// The headers a filter usually looks at, parsed with checked constructors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ethertype: u16,
    /// IPv4 source and destination, when the frame is IPv4.
    pub source: Option<core::net::Ipv4Addr>,
    pub destination: Option<core::net::Ipv4Addr>,
    pub protocol: Option<IpProtocol>,
    /// TCP or UDP ports (source, destination).
    pub ports: Option<(u16, u16)>,
    /// ICMP message type.
    pub icmp_type: Option<u8>,
}

impl Summary {
    /// Parses what it can; `None` if the frame is not even Ethernet.
    pub fn parse(frame: &[u8]) -> Option<Summary> {
        let ethernet = EthernetFrame::new_checked(frame).ok()?;
        let mut summary = Summary {
            ethertype: u16::from(ethernet.ethertype()),
            ..Summary::default()
        };
        if ethernet.ethertype() != EthernetProtocol::Ipv4 {
            return Some(summary);
        }
        let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
            return Some(summary);
        };
        summary.source = Some(ip.src_addr());
        summary.destination = Some(ip.dst_addr());
        summary.protocol = Some(ip.next_header());
        let payload = ip.payload();
        match ip.next_header() {
            IpProtocol::Tcp => {
                if let Ok(tcp) = TcpPacket::new_checked(payload) {
                    summary.ports = Some((tcp.src_port(), tcp.dst_port()));
                }
            }
            IpProtocol::Udp => {
                if let Ok(udp) = UdpPacket::new_checked(payload) {
                    summary.ports = Some((udp.src_port(), udp.dst_port()));
                }
            }
            IpProtocol::Icmp => summary.icmp_type = payload.first().copied(),
            _ => {}
        }
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_ethernet() {
        assert_eq!(Summary::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn truncated_ipv4_keeps_only_the_ethertype() {
        let mut frame = [0u8; 20];
        frame[12] = 0x08; // IPv4, but no room for its header
        let summary = Summary::parse(&frame).unwrap();
        assert_eq!(summary.ethertype, 0x0800);
        assert_eq!(summary.source, None);
    }

    #[test]
    fn drop_ports_drops_only_tcp_to_its_ports() {
        let mut frame = crate::management::tests::tcp_to(8081);
        let mut policy = DropPorts::new([8081]);
        assert_eq!(policy.on_receive(&frame), Verdict::Drop);
        frame[36..38].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(policy.on_receive(&frame), Verdict::Pass);
        assert_eq!(DropPorts::default().on_receive(&frame), Verdict::Pass);
    }

    #[test]
    fn pass_all_passes() {
        assert_eq!(PassAll.on_receive(&[]), Verdict::Pass);
    }
}
