//! The adapter between a [`Nic`] (with the image's [`RxPolicy`]) and
//! smoltcp's `Device`.
//!
//! smoltcp asks for a receive token and a transmit token together and may
//! send (an ACK, an ARP reply) from inside the receive token's closure, so
//! the tokens share the device through a `RefCell` that each borrows only
//! for the duration of one call. No frame is copied here: the receive
//! closure reads the device's buffer, the transmit closure writes into it.

use alloc::vec;
use core::cell::RefCell;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use crate::management::is_management;
use crate::nic::{MAX_FRAME, Nic};
use crate::policy::{RxPolicy, Verdict};

/// Frame counters of the receive and transmit paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Dropped by the receive policy.
    pub rx_dropped: u64,
    /// Answered directly by the receive policy.
    pub rx_answered: u64,
    /// Management traffic, handed to the stack without asking the policy.
    pub rx_management: u64,
    /// Frames smoltcp produced when the device had no room (lost; TCP
    /// retransmits).
    pub tx_lost: u64,
}

pub(crate) struct Port<N: Nic, P: RxPolicy> {
    nic: RefCell<N>,
    policy: P,
    /// The control port whose traffic bypasses the policy.
    management: Option<u16>,
    stats: RefCell<PortStats>,
}

impl<N: Nic, P: RxPolicy> Port<N, P> {
    pub fn new(nic: N, policy: P, management: Option<u16>) -> Self {
        Port {
            nic: RefCell::new(nic),
            policy,
            management,
            stats: RefCell::default(),
        }
    }

    pub fn nic(&mut self) -> &mut N {
        self.nic.get_mut()
    }

    pub fn stats(&self) -> PortStats {
        *self.stats.borrow()
    }

    /// Broadcasts a gratuitous ARP request for `address`: neighbours learn
    /// where it is before they need it (QEMU's user network otherwise
    /// holds its first packets to the guest until an ARP round trip and a
    /// retransmission later).
    pub fn announce(&mut self, address: core::net::Ipv4Addr) {
        let nic = self.nic.get_mut();
        let mac = EthernetAddress(nic.mac());
        let Some(mut buffer) = nic.transmit_buffer() else {
            return;
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: address,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: address,
        };
        let ethernet = EthernetRepr {
            src_addr: mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let len = ethernet.buffer_len() + arp.buffer_len();
        let mut frame = EthernetFrame::new_unchecked(&mut buffer.as_mut()[..len]);
        ethernet.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        nic.transmit(buffer, len);
        self.stats.get_mut().tx_frames += 1;
    }
}

pub(crate) struct RxToken<'a, N: Nic> {
    nic: &'a RefCell<N>,
    frame: Option<N::Rx>,
}

pub(crate) struct TxToken<'a, N: Nic> {
    nic: &'a RefCell<N>,
    stats: &'a RefCell<PortStats>,
}

impl<N: Nic, P: RxPolicy> Device for Port<N, P> {
    type RxToken<'a>
        = RxToken<'a, N>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, N>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_, N>, TxToken<'_, N>)> {
        let nic = self.nic.get_mut();
        let stats = self.stats.get_mut();
        // smoltcp may answer any frame: without room to send, leave the
        // frames in the ring (back-pressure) until transmissions complete.
        if !nic.can_transmit() {
            return None;
        }
        loop {
            let frame = nic.receive()?;
            let management = self
                .management
                .is_some_and(|port| is_management(frame.as_ref(), port));
            if management {
                stats.rx_management += 1;
            }
            let verdict = if management {
                Verdict::Pass
            } else {
                self.policy.on_receive(frame.as_ref())
            };
            match verdict {
                Verdict::Pass => {
                    stats.rx_frames += 1;
                    break Some((
                        RxToken {
                            nic: &self.nic,
                            frame: Some(frame),
                        },
                        TxToken {
                            nic: &self.nic,
                            stats: &self.stats,
                        },
                    ));
                }
                Verdict::Drop => {
                    stats.rx_dropped += 1;
                    nic.recycle(frame);
                }
                Verdict::Answer => {
                    stats.rx_answered += 1;
                    if let Some(mut reply) = nic.transmit_buffer() {
                        let len = self.policy.answer(frame.as_ref(), reply.as_mut());
                        let len = len.min(MAX_FRAME);
                        if len > 0 {
                            stats.tx_frames += 1;
                        }
                        nic.transmit(reply, len);
                    }
                    nic.recycle(frame);
                }
            }
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, N>> {
        if !self.nic.get_mut().can_transmit() {
            return None;
        }
        Some(TxToken {
            nic: &self.nic,
            stats: &self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

impl<N: Nic> phy::RxToken for RxToken<'_, N> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(mut self, f: F) -> R {
        let frame = self.frame.take().expect("a receive token holds its frame");
        let result = f(frame.as_ref());
        self.nic.borrow_mut().recycle(frame);
        result
    }
}

impl<N: Nic> Drop for RxToken<'_, N> {
    fn drop(&mut self) {
        // An unconsumed token still gives its buffer back.
        if let Some(frame) = self.frame.take() {
            self.nic.borrow_mut().recycle(frame);
        }
    }
}

impl<N: Nic> phy::TxToken for TxToken<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let buffer = self.nic.borrow_mut().transmit_buffer();
        match buffer {
            Some(mut buffer) if len <= MAX_FRAME => {
                let result = f(&mut buffer.as_mut()[..len]);
                self.nic.borrow_mut().transmit(buffer, len);
                self.stats.borrow_mut().tx_frames += 1;
                result
            }
            other => {
                // The device filled up since smoltcp was given this token
                // (or the frame is oversized): build the frame, lose it.
                if let Some(buffer) = other {
                    self.nic.borrow_mut().transmit(buffer, 0);
                }
                self.stats.borrow_mut().tx_lost += 1;
                f(&mut vec![0; len])
            }
        }
    }
}
