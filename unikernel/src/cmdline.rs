//! The kernel command line (`-append`), parsed: what the kernel itself
//! understands in it. Unknown words are left to the application.
//!
//! - `loglevel=off|error|warn|info|debug|trace` — the kernel log's level;
//! - `virtio_mmio.device=<size>@<address>:<gsi>` — a virtio-mmio device, as
//!   QEMU's microvm (with `acpi=off`) tells a guest where its devices are.

/// A virtio-mmio device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    pub address: u64,
    pub size: u64,
    pub gsi: u32,
}

/// The kernel log level (`info` unless `loglevel=` says otherwise).
pub fn log_level(cmdline: &str) -> log::LevelFilter {
    cmdline
        .split_ascii_whitespace()
        .find_map(|arg| arg.strip_prefix("loglevel="))
        .and_then(|level| level.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// The `virtio_mmio.device=` entries; malformed ones are skipped.
pub fn virtio_mmio_devices(cmdline: &str) -> impl Iterator<Item = MmioDevice> + '_ {
    cmdline.split_ascii_whitespace().filter_map(|arg| {
        let spec = arg.strip_prefix("virtio_mmio.device=")?;
        let (size, rest) = spec.split_once('@')?;
        let (address, gsi) = rest.split_once(':')?;
        let address = address.strip_prefix("0x").unwrap_or(address);
        Some(MmioDevice {
            address: u64::from_str_radix(address, 16).ok()?,
            size: parse_size(size)?,
            gsi: gsi.parse().ok()?,
        })
    })
}

/// `512`, `4K`, `1M` → bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1024),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn loglevel_defaults_to_info() {
        assert_eq!(log_level(""), log::LevelFilter::Info);
        assert_eq!(log_level("panic loglevel=debug"), log::LevelFilter::Debug);
        assert_eq!(log_level("loglevel=nonsense"), log::LevelFilter::Info);
        assert_eq!(log_level("loglevel=off"), log::LevelFilter::Off);
    }

    #[test]
    fn virtio_devices_are_parsed_and_garbage_skipped() {
        let line = "console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 \
                    virtio_mmio.device=4K@0xfeb00c00:11 virtio_mmio.device=zz@0x1:2 \
                    virtio_mmio.device=512@0xfeb00a00 virtio_mmio.device=99999999999999999999M@0x0:1";
        let devices: Vec<_> = virtio_mmio_devices(line).collect();
        assert_eq!(
            devices,
            [
                MmioDevice {
                    address: 0xfeb0_0e00,
                    size: 512,
                    gsi: 12
                },
                MmioDevice {
                    address: 0xfeb0_0c00,
                    size: 4096,
                    gsi: 11
                },
            ]
        );
    }
}
