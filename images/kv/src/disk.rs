//! The disk under the log: the VM's virtio-blk device or, when it has
//! none, a RAM disk, so that `cargo xtask run kv` serves even without
//! `--disk` (nothing then outlives the VM; the server says so at boot).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use unikernel::storage::{BLOCK_SIZE, DeviceError, Disk};

/// A disk in the heap.
pub struct RamDisk {
    bytes: RefCell<Vec<u8>>,
}

impl RamDisk {
    pub fn new(blocks: usize) -> RamDisk {
        RamDisk {
            bytes: RefCell::new(vec![0; blocks * BLOCK_SIZE]),
        }
    }

    fn range(&self, block: u64, len: usize) -> Result<core::ops::Range<usize>, DeviceError> {
        let start = usize::try_from(block)
            .ok()
            .and_then(|b| b.checked_mul(BLOCK_SIZE))
            .ok_or(DeviceError::OutOfRange)?;
        let end = start.checked_add(len).ok_or(DeviceError::OutOfRange)?;
        if end > self.bytes.borrow().len() || !len.is_multiple_of(BLOCK_SIZE) {
            return Err(DeviceError::OutOfRange);
        }
        Ok(start..end)
    }
}

impl Disk for RamDisk {
    const MAX_BLOCKS: usize = 128;

    fn capacity_blocks(&self) -> u64 {
        (self.bytes.borrow().len() / BLOCK_SIZE) as u64
    }

    async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let range = self.range(block, buf.len())?;
        buf.copy_from_slice(&self.bytes.borrow()[range]);
        Ok(())
    }

    async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let range = self.range(block, buf.len())?;
        self.bytes.borrow_mut()[range].copy_from_slice(buf);
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// The disk the server logs to.
#[cfg(target_os = "none")]
#[allow(clippy::large_enum_variant)] // one per image, built once at boot: boxing buys nothing
pub enum KvDisk {
    Virtio(unikernel::block::BlockDevice),
    Ram(RamDisk),
}

#[cfg(target_os = "none")]
impl Disk for KvDisk {
    const MAX_BLOCKS: usize = 128;

    fn capacity_blocks(&self) -> u64 {
        match self {
            KvDisk::Virtio(disk) => Disk::capacity_blocks(disk),
            KvDisk::Ram(disk) => disk.capacity_blocks(),
        }
    }

    async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        match self {
            KvDisk::Virtio(disk) => Disk::read(disk, block, buf).await,
            KvDisk::Ram(disk) => disk.read(block, buf).await,
        }
    }

    async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError> {
        match self {
            KvDisk::Virtio(disk) => Disk::write(disk, block, buf).await,
            KvDisk::Ram(disk) => disk.write(block, buf).await,
        }
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        match self {
            KvDisk::Virtio(disk) => Disk::flush(disk).await,
            KvDisk::Ram(disk) => disk.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unikernel::storage::testing::block_on;

    #[test]
    fn a_ram_disk_keeps_blocks_and_refuses_what_does_not_fit() {
        let disk = RamDisk::new(4);
        assert_eq!(disk.capacity_blocks(), 4);
        let data = [7u8; 2 * BLOCK_SIZE];
        block_on(disk.write(2, &data)).unwrap();
        let mut back = [0u8; BLOCK_SIZE];
        block_on(disk.read(3, &mut back)).unwrap();
        assert_eq!(back, [7u8; BLOCK_SIZE]);
        assert_eq!(block_on(disk.write(3, &data)), Err(DeviceError::OutOfRange));
        assert_eq!(
            block_on(disk.read(u64::MAX, &mut back)),
            Err(DeviceError::OutOfRange)
        );
    }
}
