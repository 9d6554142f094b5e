//! PCI on q35 and pc: configuration space through the legacy I/O ports,
//! virtio-pci devices found on bus 0 and opened with `virtio-drivers`'
//! modern PCI transport.
//!
//! Configuration mechanism #1 (ports `0xcf8`/`0xcfc`) exists on every x86
//! PC chipset QEMU models and needs no ACPI table to find; on `microvm`
//! there is no PCI host bridge and the first read says so (`0xffff`).
//!
//! BARs: SeaBIOS, which runs before the PVH entry on q35 and pc, assigns
//! them. A memory BAR it left at 0 (or every BAR, with `pci=assign` on the
//! command line, which is how the tests prove this path) is given an
//! address here from [`WINDOW`], aligned to its size; then memory decoding
//! and bus mastering are switched on.
//!
//! Interrupts: legacy INTx. The firmware writes the ISA IRQ it routed the
//! pin to into the Interrupt Line register, and QEMU's chipsets raise that
//! line on the I/O APIC as well as on the 8259, so it is the GSI to claim.

use alloc::vec::Vec;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot,
};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use x86_64::instructions::port::Port;

use super::virtio::KernelHal;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const INTERRUPT_LINE: u8 = 0x3c;

/// Where BARs are placed when the firmware did not: q35's 32-bit PCI hole
/// above its ECAM window, below the I/O APIC.
pub const WINDOW: (u64, u64) = (0xc000_0000, 0xe000_0000);

/// Configuration mechanism #1 through I/O ports.
pub struct PortCam;

fn config_address(device_function: DeviceFunction, register_offset: u8) -> u32 {
    0x8000_0000
        | u32::from(device_function.bus) << 16
        | u32::from(device_function.device) << 11
        | u32::from(device_function.function) << 8
        | u32::from(register_offset & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        let address = config_address(device_function, register_offset);
        // SAFETY: 0xcf8/0xcfc are the PC's configuration-space ports; a
        // read of an absent function returns all ones. Interrupts are off so
        // that no handler can move the address register in between.
        x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address);
            Port::<u32>::new(CONFIG_DATA).read()
        })
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        let address = config_address(device_function, register_offset);
        // SAFETY: as for `read_word`; callers write only registers of a
        // function they own (BARs, command).
        x86_64::instructions::interrupts::without_interrupts(|| unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address);
            Port::<u32>::new(CONFIG_DATA).write(data);
        })
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Whether the machine has a PCI host bridge at 00:00.0.
pub fn present() -> bool {
    let host = DeviceFunction {
        bus: 0,
        device: 0,
        function: 0,
    };
    PortCam.read_word(host, 0) & 0xffff != 0xffff
}

/// A virtio device on PCI.
pub struct PciDevice {
    pub kind: DeviceType,
    pub transport: PciTransport,
    pub gsi: u32,
    /// The lowest memory BAR's address (for the log).
    pub address: u64,
}

/// Gives every memory BAR of `function` that has no address (all of them
/// with `reassign`) one from the window; returns the lowest address.
fn assign_bars(
    root: &mut PciRoot<PortCam>,
    function: DeviceFunction,
    next: &mut u64,
    reassign: bool,
) -> Option<u64> {
    let bars = root.bars(function).ok()?;
    let mut lowest = None::<u64>;
    for (index, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address_type,
            address,
            size,
            ..
        }) = bar
        else {
            continue;
        };
        let mut address = *address;
        if (address == 0 || reassign) && *size > 0 {
            let placed = next.next_multiple_of(*size);
            if placed + size > WINDOW.1 {
                log::warn!(target: "pci", "{function}: no room for BAR{index} ({size} bytes)");
                continue;
            }
            *next = placed + size;
            match address_type {
                MemoryBarType::Width64 => root.set_bar_64(function, index as u8, placed),
                _ => root.set_bar_32(function, index as u8, placed as u32),
            }
            log::debug!(target: "pci", "{function}: BAR{index} at {placed:#x} ({size} bytes), assigned");
            address = placed;
        }
        lowest = Some(lowest.map_or(address, |l| l.min(address)));
    }
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER,
    );
    lowest
}

/// Every virtio device on bus 0, its BARs assigned and its transport open.
pub fn discover(reassign: bool) -> Vec<PciDevice> {
    let mut devices = Vec::new();
    if !present() {
        return devices;
    }
    let mut root = PciRoot::new(PortCam);
    let mut next = WINDOW.0;
    let functions: Vec<_> = root.enumerate_bus(0).collect();
    for (function, info) in functions {
        let Some(kind) = virtio_device_type(&info) else {
            continue;
        };
        let address = assign_bars(&mut root, function, &mut next, reassign).unwrap_or(0);
        let line = PortCam.read_word(function, INTERRUPT_LINE) & 0xff;
        match PciTransport::new::<KernelHal, _>(&mut root, function) {
            Ok(transport) => devices.push(PciDevice {
                kind,
                transport,
                gsi: line,
                address,
            }),
            Err(e) => log::warn!(target: "pci", "{function}: virtio {kind:?} unusable: {e:?}"),
        }
    }
    devices
}
