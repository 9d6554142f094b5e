//! virtio devices on both transports, and the DMA glue
//! (`virtio_drivers::Hal`) that the device drivers are built on.
//!
//! A driver asks for a device by kind ([`take`]) and gets a
//! [`SomeTransport`]: virtio-mmio (microvm) or virtio-pci (q35, pc; see
//! [`super::pci`]), with the GSI its interrupt arrives on. The drivers never
//! learn which one it is.
//!
//! microvm places virtio-mmio slots at 0xfeb0_0000 + n × 0x200 and tells a
//! Linux guest where each device and its interrupt are through the command
//! line (`virtio_mmio.device=512@0xfeb00e00:12`). The kernel reads those
//! entries when present and otherwise scans the slots, assuming microvm's
//! GSI assignment (slot n → GSI [`FIRST_GSI`] + n).
//!
//! DMA is simple because RAM is identity-mapped: a buffer's address is the
//! device's address. DMA pages come from the frame allocator.

use core::ptr::NonNull;

use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use crate::memory::{FRAME_SIZE, FRAMES};

/// Where microvm's virtio-mmio slots start.
pub const MMIO_BASE: u64 = 0xfeb0_0000;
/// Size of one slot.
pub const MMIO_SLOT: u64 = 0x200;
/// How many slots are scanned when the command line names none.
pub const MMIO_SLOTS: u64 = 24;
/// GSI of slot 0 on microvm.
pub const FIRST_GSI: u32 = 5;

/// The kernel's `virtio_drivers::Hal`.
pub struct KernelHal;

// SAFETY: dma_alloc returns zeroed, page-aligned, identity-mapped frames
// owned by nobody else until dma_dealloc; share/unshare return the buffer's
// own (identity-mapped) address, valid for the device while the driver
// keeps the buffer alive, as virtio-drivers requires.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let address = FRAMES
            .lock()
            .allocate(pages as u64, FRAME_SIZE)
            .unwrap_or_else(|e| panic!("out of DMA memory for {pages} pages: {e:?}"));
        // SAFETY: fresh frames from the allocator, identity-mapped RAM.
        unsafe { core::ptr::write_bytes(address as *mut u8, 0, pages * PAGE_SIZE) };
        (
            address,
            NonNull::new(address as *mut u8).expect("frame 0 is never allocated"),
        )
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match FRAMES.lock().free(paddr, pages as u64) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        super::paging::map_mmio(paddr, size as u64);
        NonNull::new(paddr as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A virtio device found on the machine.
pub struct VirtioDevice {
    pub kind: DeviceType,
    pub transport: SomeTransport<'static>,
    /// The GSI its interrupt arrives on.
    pub gsi: u32,
    /// Its registers: the slot (mmio) or the lowest memory BAR (pci).
    pub address: u64,
}

impl VirtioDevice {
    /// `"mmio"` or `"pci"`.
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            SomeTransport::Mmio(_) => "mmio",
            _ => "pci",
        }
    }
}

fn probe(address: u64, size: u64, gsi: u32) -> Option<VirtioDevice> {
    super::paging::map_mmio(address, size);
    let header = NonNull::new(address as *mut VirtIOHeader)?;
    // SAFETY: `address` is a virtio-mmio slot (from the loader's command
    // line or microvm's fixed layout), mapped uncached just above, and each
    // slot is probed once, so the transport is its only user.
    let transport = unsafe { MmioTransport::new(header, size as usize) }.ok()?;
    let kind = transport.device_type();
    Some(VirtioDevice {
        kind,
        transport: transport.into(),
        gsi,
        address,
    })
}

/// The first device of `kind`. The other devices found on the way are
/// left alone: dropping a transport resets its device, which would stop a
/// device another driver already uses (e.g. the disk when the network
/// opens after it).
pub fn take(kind: DeviceType) -> Option<VirtioDevice> {
    let mut wanted = None;
    for device in discover() {
        if wanted.is_none() && device.kind == kind {
            wanted = Some(device);
        } else {
            core::mem::forget(device);
        }
    }
    wanted
}

/// Every virtio device present, each probed once: the virtio-mmio devices
/// the command line names (or, on a machine without PCI, those a scan of
/// microvm's slots finds), then the virtio-pci devices on bus 0
/// (`pci=assign` on the command line places every BAR here instead of
/// keeping the firmware's addresses).
pub fn discover() -> alloc::vec::Vec<VirtioDevice> {
    let cmdline = super::cmdline();
    let pci = super::pci::present();
    let mut devices: alloc::vec::Vec<VirtioDevice> = crate::cmdline::virtio_mmio_devices(cmdline)
        .filter_map(|d| probe(d.address, d.size, d.gsi))
        .collect();
    if devices.is_empty() && !pci && !cmdline.contains("virtio_mmio.device=") {
        log::debug!(target: "virtio", "no virtio_mmio.device= on the command line: scanning \
            (interrupt lines are guessed; run microvm with acpi=off, as cargo xtask does)");
        devices = (0..MMIO_SLOTS)
            .filter_map(|n| probe(MMIO_BASE + n * MMIO_SLOT, MMIO_SLOT, FIRST_GSI + n as u32))
            .collect();
    }
    let reassign = cmdline.split_ascii_whitespace().any(|a| a == "pci=assign");
    devices.extend(
        super::pci::discover(reassign)
            .into_iter()
            .map(|d| VirtioDevice {
                kind: d.kind,
                transport: d.transport.into(),
                gsi: d.gsi,
                address: d.address,
            }),
    );
    for device in &devices {
        log::debug!(target: "virtio", "{:?} on {} at {:#x}, GSI {}",
            device.kind, device.transport_name(), device.address, device.gsi);
    }
    devices
}
