//! Queue notifications ("kicks") and interrupt acknowledgement that cost
//! as few VM exits as the virtio protocol allows.
//!
//! Every kick is a write to a device register, and under KVM a VM exit.
//! With `VIRTIO_F_EVENT_IDX` the device says, in the used ring's
//! `avail_event`, the first new buffer it has not been told about; a kick
//! is needed only when the driver's new buffers cross that index (virtio
//! 1.1 §2.6.7.2, `vring_need_event`). virtio-drivers 0.13 checks
//! `avail_idx > avail_event` instead, so it kicks after nearly every
//! buffer (and, across the 16-bit wrap, can miss a kick the device waits
//! for). [`Deferred`] sits between virtio-drivers and the real transport:
//! it learns where each queue's rings are (`queue_set`), swallows the
//! library's kicks, and [`Kicker::flush`], called once per poll, kicks each
//! queue whose new buffers the device asked to hear about: one kick for
//! all the frames of a poll, none while the device is still working
//! through earlier buffers.
//!
//! Acknowledging an interrupt costs virtio-drivers a read of the status
//! register and a write of the same bits; [`Kicker`] writes the
//! acknowledgement of both causes (used buffers, configuration change)
//! straight away when it knows the register's address (virtio-mmio), one
//! access instead of two. The caller drains its queues after the
//! acknowledgement, so nothing that arrives meanwhile is missed.
//!
//! Only for drivers that never wait for a kick's effect inside
//! virtio-drivers (the raw network driver); a synchronous request would
//! wait forever for a deferred kick.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::sync::atomic::{Ordering, fence};

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::event_idx::need_event;

/// Queues tracked per device.
const QUEUES: usize = 4;

/// virtio-mmio's InterruptACK register.
pub const MMIO_INTERRUPT_ACK: u64 = 0x064;

#[derive(Clone, Copy, Default)]
struct Ring {
    /// Driver area (available ring) and device area (used ring).
    driver: u64,
    device: u64,
    size: u16,
    /// The available index when this queue was last considered for a kick.
    last: u16,
    active: bool,
}

struct Shared<T> {
    transport: T,
    rings: [Ring; QUEUES],
    /// The interrupt acknowledgement register, if written directly.
    ack: Option<u64>,
    kicks: u64,
}

/// The transport virtio-drivers gets: the real one, with kicks deferred.
pub struct Deferred<T: Transport>(Rc<RefCell<Shared<T>>>);

/// The driver's handle: kicks what is due, acknowledges interrupts.
pub struct Kicker<T: Transport>(Rc<RefCell<Shared<T>>>);

/// Splits `transport` into the deferred transport and its kicker; `ack`
/// is the physical address of the interrupt acknowledgement register
/// (virtio-mmio: base + [`MMIO_INTERRUPT_ACK`]), `None` to let the
/// transport acknowledge.
///
/// # Safety
///
/// `ack`, if given, must be the identity-mapped, uncached InterruptACK
/// register of the device behind `transport`.
pub unsafe fn split<T: Transport>(transport: T, ack: Option<u64>) -> (Deferred<T>, Kicker<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        transport,
        rings: [Ring::default(); QUEUES],
        ack,
        kicks: 0,
    }));
    (Deferred(shared.clone()), Kicker(shared))
}

impl<T: Transport> Kicker<T> {
    /// Kicks every queue that has new buffers the device asked to hear of.
    pub fn flush(&mut self) {
        let mut shared = self.0.borrow_mut();
        let shared = &mut *shared;
        for (queue, ring) in shared.rings.iter_mut().enumerate() {
            if !ring.active {
                continue;
            }
            // SAFETY: `driver`/`device` are the rings virtio-drivers gave
            // the device in `queue_set`, alive until `queue_unset` clears
            // `active`; the available index is at byte 2 of the available
            // ring, `avail_event` after the used ring's `size` elements.
            // Volatile: the device writes `avail_event` at any time.
            let (new, event) = unsafe {
                let new = ((ring.driver + 2) as *const u16).read_volatile();
                // The index must be visible before the device's view of it is read.
                fence(Ordering::SeqCst);
                let event =
                    ((ring.device + 4 + 8 * u64::from(ring.size)) as *const u16).read_volatile();
                (new, event)
            };
            if new == ring.last {
                continue;
            }
            if need_event(event, new, ring.last) {
                shared.transport.notify(queue as u16);
                shared.kicks += 1;
            }
            ring.last = new;
        }
    }

    /// Acknowledges the device's interrupt (one register write on mmio).
    pub fn ack_interrupt(&mut self) {
        let mut shared = self.0.borrow_mut();
        match shared.ack {
            // SAFETY: the InterruptACK register, per `split`'s contract;
            // writing both bits acknowledges both causes.
            Some(register) => unsafe { (register as *mut u32).write_volatile(0x3) },
            None => {
                shared.transport.ack_interrupt();
            }
        }
    }

    /// Kicks sent so far.
    pub fn kicks(&self) -> u64 {
        self.0.borrow().kicks
    }
}

impl<T: Transport> Transport for Deferred<T> {
    fn device_type(&self) -> DeviceType {
        self.0.borrow().transport.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.borrow_mut().transport.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0
            .borrow_mut()
            .transport
            .write_driver_features(driver_features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.borrow_mut().transport.max_queue_size(queue)
    }
    /// Deferred to [`Kicker::flush`].
    fn notify(&mut self, _queue: u16) {}
    fn get_status(&self) -> DeviceStatus {
        self.0.borrow().transport.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.0.borrow_mut().transport.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.0
            .borrow_mut()
            .transport
            .set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.0.borrow().transport.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let mut shared = self.0.borrow_mut();
        if let Some(ring) = shared.rings.get_mut(usize::from(queue)) {
            *ring = Ring {
                driver: driver_area,
                device: device_area,
                size: size as u16,
                last: 0,
                active: true,
            };
        }
        shared
            .transport
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        let mut shared = self.0.borrow_mut();
        if let Some(ring) = shared.rings.get_mut(usize::from(queue)) {
            ring.active = false;
        }
        shared.transport.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.borrow_mut().transport.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.borrow_mut().transport.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.0.borrow().transport.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V> {
        self.0.borrow().transport.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<()> {
        self.0
            .borrow_mut()
            .transport
            .write_config_space(offset, value)
    }
}
