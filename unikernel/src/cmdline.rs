//! The kernel command line (`-append`): the one place that reads it.
//!
//! The line is words separated by white space; a word is a *setting*
//! `key=value` or a bare *flag*. [`setting`] and [`flag`] are how every
//! part of an image (the kernel, `net`, the graft host, the images) looks a
//! word up, so they all agree on the syntax: the first `key=` wins, a flag
//! is a whole word (`disk` is not found in `nodisk`), and keys are matched
//! whole (`port` does not match `portal=1`). Each reader parses and checks
//! its own values and says what was wrong.
//!
//! What the kernel itself understands; other words are left to the
//! application:
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

/// The value of the first `key=value` word, if there is one.
pub fn setting<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    settings(cmdline, key).next()
}

/// The values of every `key=value` word, in order (for keys that may
/// repeat, such as `virtio_mmio.device`).
pub fn settings<'a>(cmdline: &'a str, key: &str) -> impl Iterator<Item = &'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(move |word| word.strip_prefix(key)?.strip_prefix('='))
}

/// The flags (words without `=`), in order.
pub fn flags(cmdline: &str) -> impl Iterator<Item = &str> {
    cmdline
        .split_ascii_whitespace()
        .filter(|word| !word.contains('='))
}

/// Whether `name` appears as a flag (a whole word, not a setting).
pub fn flag(cmdline: &str, name: &str) -> bool {
    flags(cmdline).any(|word| word == name)
}

/// The kernel log level (`info` unless `loglevel=` says otherwise).
pub fn log_level(cmdline: &str) -> log::LevelFilter {
    setting(cmdline, "loglevel")
        .and_then(|level| level.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// The `virtio_mmio.device=` entries; malformed ones are skipped.
pub fn virtio_mmio_devices(cmdline: &str) -> impl Iterator<Item = MmioDevice> + '_ {
    settings(cmdline, "virtio_mmio.device").filter_map(|spec| {
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
    fn settings_match_whole_keys_and_the_first_wins() {
        let line = "portal=1 port=80 port=81 ip= disk loglevel=debug";
        assert_eq!(setting(line, "port"), Some("80"));
        assert_eq!(settings(line, "port").collect::<Vec<_>>(), ["80", "81"]);
        assert_eq!(setting(line, "portal"), Some("1"));
        assert_eq!(setting(line, "ip"), Some(""));
        assert_eq!(setting(line, "disk"), None);
        assert_eq!(setting(line, "gw"), None);
        assert_eq!(setting("", "port"), None);
    }

    #[test]
    fn flags_are_whole_words() {
        let line = "nodisk wild=1 crash=2 disk";
        assert!(flag(line, "disk"));
        assert!(!flag("nodisk", "disk"));
        assert!(!flag(line, "wild"));
        assert!(!flag(line, "crash"));
        assert_eq!(flags(line).collect::<Vec<_>>(), ["nodisk", "disk"]);
    }

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
