//! virtio-net as a safe, non-blocking frame device.
//!
//! virtio-drivers offers two network drivers: `VirtIONet`, which is safe
//! but copies every frame into and out of its own buffers, and
//! `VirtIONetRaw`, which lends the caller's buffers to the device and is
//! `unsafe` because the device writes into them after the call returns.
//! This module wraps the raw one so that the network stack (the `net`
//! crate, which forbids `unsafe`) gets the speed without the hazard.
//!
//! The invariant that makes it sound: a buffer lent to the device is owned
//! by [`NetDevice`] (in `rx_posted`/`tx_posted`, indexed by the token the
//! queue returned) until the device hands it back through the used ring;
//! only then is it moved out, as an [`RxFrame`] or back to the free list.
//! Frames move as boxes (a pointer), never byte by byte: a received frame is
//! read by the stack where the device wrote it, and a frame to send is
//! written by the stack straight into the buffer the device will read.
//! `raw` is the first field, so on drop the queues are detached from the
//! device before any buffer is freed.
//!
//! The transport is a type parameter: microvm's virtio-mmio by default, a
//! PCI transport on a PCI machine. virtio-drivers sees it through
//! [`virtio_kick::Deferred`]: the frames posted or sent during one poll of
//! the stack reach the device with at most one kick per queue
//! ([`NetDevice::flush`]), and only when the device asked for one.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::task::{Context, Poll};

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport};

use super::irq::IrqLine;
use super::virtio::{KernelHal, take};
use super::virtio_kick::{self, Deferred, Kicker, MMIO_INTERRUPT_ACK};

/// Descriptors per queue (receive and transmit each).
pub const QUEUE_SIZE: usize = 64;
/// Bytes per buffer: the virtio-net header plus a full Ethernet frame
/// (1514 bytes), rounded up.
pub const BUFFER_LEN: usize = 1536;
pub use crate::MAX_FRAME;

/// Why the device could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No virtio-net device on this machine (the command line's fault:
    /// add `-device virtio-net-device,...`).
    NoDevice,
    /// The device refused to start (its fault or QEMU's).
    Device,
    /// No interrupt line left for it (a kernel limit).
    NoInterrupt,
}

/// A received Ethernet frame, lent out of the receive ring.
pub struct RxFrame {
    buffer: Box<[u8]>,
    start: usize,
    len: usize,
}

impl RxFrame {
    /// The frame, from the destination MAC address on.
    pub fn frame(&self) -> &[u8] {
        &self.buffer[self.start..self.start + self.len]
    }

    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for RxFrame {
    fn as_ref(&self) -> &[u8] {
        self.frame()
    }
}

/// A buffer for one frame to send, owned by the caller until
/// [`NetDevice::transmit`].
pub struct TxFrame {
    buffer: Box<[u8]>,
    header: usize,
}

impl TxFrame {
    /// Room for the frame: [`MAX_FRAME`] bytes.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[self.header..self.header + MAX_FRAME]
    }
}

impl AsMut<[u8]> for TxFrame {
    fn as_mut(&mut self) -> &mut [u8] {
        self.frame_mut()
    }
}

/// Counters kept by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub interrupts: u64,
    /// Queue notifications sent (receive and transmit).
    pub kicks: u64,
    /// Frames the device returned in an unusable state (dropped).
    pub rx_errors: u64,
}

/// A virtio-net device with its buffers and interrupt line.
pub struct NetDevice<T: Transport = SomeTransport<'static>> {
    // First field: dropped (queues detached) before the buffers below.
    raw: VirtIONetRaw<KernelHal, Deferred<T>, QUEUE_SIZE>,
    kicker: Kicker<T>,
    /// Receive buffers the device owns, by token.
    rx_posted: Vec<Option<Box<[u8]>>>,
    /// Transmit buffers the device owns, by token, with the length lent.
    tx_posted: Vec<Option<(Box<[u8]>, usize)>>,
    /// Transmit buffers nobody is using.
    tx_free: Vec<Box<[u8]>>,
    /// Transmissions handed to the device and not yet reclaimed.
    tx_in_flight: usize,
    header: usize,
    irq: IrqLine,
    stats: DeviceStats,
}

impl NetDevice {
    /// Opens the first virtio-net device found (virtio-mmio or virtio-pci).
    pub fn open() -> Result<NetDevice, OpenError> {
        let found = take(DeviceType::Network).ok_or(OpenError::NoDevice)?;
        // Only virtio-mmio has an InterruptACK register to write directly;
        // virtio-pci acknowledges by reading its ISR, through the transport.
        let ack = match found.transport {
            SomeTransport::Mmio(_) => Some(found.address + MMIO_INTERRUPT_ACK),
            _ => None,
        };
        // SAFETY: for mmio, `found.address` is the device's register block,
        // identity-mapped uncached by discovery; otherwise no register.
        let (deferred, kicker) = unsafe { virtio_kick::split(found.transport, ack) };
        NetDevice::start(deferred, kicker, found.gsi)
    }
}

impl<T: Transport> NetDevice<T> {
    /// Starts the device behind `transport`, whose interrupt arrives on `gsi`.
    pub fn new(transport: T, gsi: u32) -> Result<NetDevice<T>, OpenError> {
        // SAFETY: no acknowledgement register is given.
        let (deferred, kicker) = unsafe { virtio_kick::split(transport, None) };
        NetDevice::start(deferred, kicker, gsi)
    }

    fn start(
        transport: Deferred<T>,
        kicker: Kicker<T>,
        gsi: u32,
    ) -> Result<NetDevice<T>, OpenError> {
        let mut raw = VirtIONetRaw::<KernelHal, _, QUEUE_SIZE>::new(transport).map_err(|e| {
            log::error!(target: "net", "virtio-net failed to start: {e:?}");
            OpenError::Device
        })?;
        let mut probe = [0u8; 32];
        let header = raw
            .fill_buffer_header(&mut probe)
            .map_err(|_| OpenError::Device)?;
        let irq = IrqLine::claim(gsi).map_err(|e| {
            log::error!(target: "net", "no interrupt line for virtio-net: {e:?}");
            OpenError::NoInterrupt
        })?;
        raw.enable_interrupts();
        let mut device = NetDevice {
            raw,
            kicker,
            rx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free: (0..QUEUE_SIZE)
                .map(|_| vec![0u8; BUFFER_LEN].into_boxed_slice())
                .collect(),
            tx_in_flight: 0,
            header,
            irq,
            stats: DeviceStats::default(),
        };
        for _ in 0..QUEUE_SIZE {
            device.post_rx(vec![0u8; BUFFER_LEN].into_boxed_slice());
        }
        device.flush();
        // An interrupt raised before the line was routed left the (level)
        // line high: acknowledge it, or no further edge would ever come.
        device.kicker.ack_interrupt();
        let mac = device.mac();
        log::info!(target: "net", "virtio-net {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, GSI {gsi}, \
            {QUEUE_SIZE} descriptors per queue, {header}-byte header",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        Ok(device)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            kicks: self.kicker.kicks(),
            ..self.stats
        }
    }

    /// Tells the device about the buffers posted and the frames sent since
    /// the last flush, if it asked to hear (call once per poll).
    pub fn flush(&mut self) {
        self.kicker.flush();
    }

    /// Lends `buffer` to the device for the next received frame.
    fn post_rx(&mut self, mut buffer: Box<[u8]>) {
        // SAFETY: the buffer is a heap allocation that `rx_posted` keeps
        // alive and untouched until the device returns this token through
        // the used ring (`receive` moves it out only after `receive_complete`);
        // on drop `raw` detaches the queue before `rx_posted` is freed.
        match unsafe { self.raw.receive_begin(&mut buffer[..]) } {
            Ok(token) => self.rx_posted[usize::from(token)] = Some(buffer),
            // The ring has one descriptor per buffer and QUEUE_SIZE buffers:
            // full cannot happen; if it did, the buffer is simply freed.
            Err(e) => log::warn!(target: "net", "virtio-net: receive buffer not posted: {e:?}"),
        }
    }

    /// The next received frame, if any. Give it back with [`Self::recycle`]
    /// (dropping it instead shrinks the receive ring by one buffer).
    pub fn receive(&mut self) -> Option<RxFrame> {
        loop {
            let token = self.raw.poll_receive()?;
            let Some(mut buffer) = self.rx_posted[usize::from(token)].take() else {
                // The device used a descriptor we never posted: a device bug.
                log::error!(target: "net", "virtio-net returned unknown receive token {token}");
                return None;
            };
            // SAFETY: `buffer` is the one posted with `token` (looked up by
            // token above) and the device has returned it.
            match unsafe { self.raw.receive_complete(token, &mut buffer[..]) } {
                Ok((start, len)) if start + len <= buffer.len() => {
                    self.stats.rx_frames += 1;
                    return Some(RxFrame { buffer, start, len });
                }
                _ => {
                    self.stats.rx_errors += 1;
                    self.post_rx(buffer);
                }
            }
        }
    }

    /// Returns a received frame's buffer to the receive ring.
    pub fn recycle(&mut self, frame: RxFrame) {
        self.post_rx(frame.buffer);
    }

    /// Takes back buffers whose transmission the device has completed.
    fn reclaim_tx(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some((buffer, len)) = self.tx_posted[usize::from(token)].take() else {
                log::error!(target: "net", "virtio-net returned unknown transmit token {token}");
                return;
            };
            // SAFETY: `&buffer[..len]` is the exact slice passed to
            // `transmit_begin` with this token, and the device has returned it.
            let _ = unsafe { self.raw.transmit_complete(token, &buffer[..len]) };
            self.tx_in_flight -= 1;
            self.tx_free.push(buffer);
        }
    }

    /// A buffer for a frame to send, if the transmit ring has room.
    pub fn transmit_buffer(&mut self) -> Option<TxFrame> {
        if self.tx_free.is_empty() || self.tx_in_flight > QUEUE_SIZE / 2 {
            self.reclaim_tx();
        }
        let buffer = self.tx_free.pop()?;
        Some(TxFrame {
            buffer,
            header: self.header,
        })
    }

    /// Whether [`Self::transmit_buffer`] would give a buffer now.
    pub fn can_transmit(&mut self) -> bool {
        if self.tx_free.is_empty() {
            self.reclaim_tx();
        }
        !self.tx_free.is_empty()
    }

    /// Sends the first `len` bytes of `frame` (clamped to [`MAX_FRAME`]);
    /// `len == 0` returns the buffer unsent.
    pub fn transmit(&mut self, frame: TxFrame, len: usize) {
        let TxFrame { mut buffer, header } = frame;
        if len == 0 {
            self.tx_free.push(buffer);
            return;
        }
        let _ = self.raw.fill_buffer_header(&mut buffer[..header]);
        let total = header + len.min(MAX_FRAME);
        // SAFETY: `tx_posted` owns the buffer and does not touch it until the
        // device returns the token (`reclaim_tx`); `raw` is dropped first.
        match unsafe { self.raw.transmit_begin(&buffer[..total]) } {
            Ok(token) => {
                self.tx_posted[usize::from(token)] = Some((buffer, total));
                self.tx_in_flight += 1;
                self.stats.tx_frames += 1;
            }
            Err(e) => {
                log::warn!(target: "net", "virtio-net: frame not sent: {e:?}");
                self.tx_free.push(buffer);
            }
        }
    }

    /// Ready when the device has signalled an interrupt since the last
    /// ready poll; the interrupt is acknowledged here, before the caller
    /// drains the queues, so a frame that arrives meanwhile raises a new one.
    pub fn poll_interrupt(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.irq.register(cx.waker()) && self.irq.take_fired() {
            self.kicker.ack_interrupt();
            self.stats.interrupts += 1;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
