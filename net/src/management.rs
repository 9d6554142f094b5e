//! The management path: which received frames belong to the image's
//! control channel, so that they reach the stack before the receive
//! policy (and every graft on `net.rx`) is asked.
//!
//! Why classify rather than give the control channel a device of its own
//! (a second NIC, virtio-vsock, virtio-console): a second device doubles
//! the driver and stack state an image carries and needs the operator's
//! VMM to provide it; classification costs two header checks per frame
//! and works wherever the image is reachable at all. The price is that a
//! filter on `net.rx` cannot guard the control port: the control channel
//! defends itself (signed envelopes, a bounded number of sessions, an
//! idle time-out), not the receive policy.
//!
//! What counts as management traffic, when the stack was given a control
//! port ([`crate::Config::management_port`]):
//! - every TCP segment to that port (the sessions' inbound half; what the
//!   stack sends never passes the receive policy anyway);
//! - every ARP frame: without ARP the stack cannot learn where to send
//!   the replies. smoltcp only acts on ARP for its own address, so
//!   passing all of it costs nothing and hides nothing a graft needs.
//!
//! Everything else goes to the policy as before. A frame that does not
//! parse is not management traffic (the policy sees it, as it would).

use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};

/// Whether `frame` is management traffic for control port `port`.
pub fn is_management(frame: &[u8], port: u16) -> bool {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match ethernet.ethertype() {
        EthernetProtocol::Arp => true,
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
                return false;
            };
            // A later fragment carries no TCP header (and this stack does
            // not reassemble): not classified.
            if ip.next_header() != IpProtocol::Tcp || ip.frag_offset() != 0 {
                return false;
            }
            TcpPacket::new_checked(ip.payload()).is_ok_and(|tcp| tcp.dst_port() == port)
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Ethernet + IPv4 (IHL 5) + a 20-byte TCP header to `port`.
    pub(crate) fn tcp_to(port: u16) -> [u8; 54] {
        let mut frame = [0u8; 54];
        frame[12] = 0x08;
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&40u16.to_be_bytes());
        frame[22] = 64;
        frame[23] = 6;
        frame[34..36].copy_from_slice(&40000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&port.to_be_bytes());
        frame[46] = 0x50;
        frame
    }

    #[test]
    fn tcp_to_the_control_port_is_management_and_other_ports_are_not() {
        assert!(is_management(&tcp_to(7070), 7070));
        assert!(!is_management(&tcp_to(80), 7070));
        assert!(!is_management(&tcp_to(7070), 7071));
    }

    #[test]
    fn arp_is_management_and_garbage_is_not() {
        let mut arp = [0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(is_management(&arp, 7070));
        assert!(!is_management(&[0x08; 5], 7070));
        // IPv4 with a truncated header: the policy's business.
        let mut short = tcp_to(7070);
        short[14] = 0x4f;
        assert!(!is_management(&short, 7070));
    }

    #[test]
    fn a_later_fragment_is_not_classified() {
        let mut frame = tcp_to(7070);
        frame[20] = 0x00;
        frame[21] = 0x10; // fragment offset 16 * 8 bytes
        assert!(!is_management(&frame, 7070));
    }

    #[test]
    fn udp_to_the_control_port_is_not_management() {
        let mut frame = tcp_to(7070);
        frame[23] = 17;
        assert!(!is_management(&frame, 7070));
    }
}
