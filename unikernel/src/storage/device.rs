//! The two things the block cache is generic over: the disk below it
//! ([`Disk`]) and the memory its slots live in ([`CacheMemory`]).
//!
//! On the target they are the virtio-blk `BlockDevice` and the Rio
//! `ProtectedRegion` (implemented here); in host tests they are the
//! doubles in [`super::testing`].

/// Size of one block, on the disk and in a cache slot.
pub const BLOCK_SIZE: usize = 512;

/// One block of data.
pub type Block = [u8; BLOCK_SIZE];

/// Why the disk failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The request reaches past the end of the disk (the caller's mistake).
    OutOfRange,
    /// The device refused or failed the request (the device's fault).
    Failed,
}

/// A disk of [`BLOCK_SIZE`]-sized blocks. Buffers are whole blocks, at most
/// [`Disk::MAX_BLOCKS`] of them per request.
#[allow(async_fn_in_trait)] // One CPU: futures never cross threads.
pub trait Disk {
    /// Largest request, in blocks.
    const MAX_BLOCKS: usize;
    /// Disk size in blocks.
    fn capacity_blocks(&self) -> u64;
    /// Reads `buf.len() / BLOCK_SIZE` blocks starting at `block`.
    async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Writes `buf` starting at `block`.
    async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Makes completed writes durable.
    async fn flush(&self) -> Result<(), DeviceError>;
}

/// Memory that survives a crash: what the cache keeps its slots and
/// registry in. Reads are plain; [`CacheMemory::write`] is the only way to
/// change it.
pub trait CacheMemory {
    /// The whole memory, read-only.
    fn bytes(&self) -> &[u8];
    /// Copies `data` to `offset` (which the caller keeps in bounds).
    fn write(&mut self, offset: usize, data: &[u8]);
    /// Copies several pieces, in order. The Rio region does it with one
    /// change of protection for all; by default, one write each.
    fn write_many(&mut self, pieces: &[(usize, &[u8])]) {
        for &(offset, data) in pieces {
            self.write(offset, data);
        }
    }
    fn len(&self) -> usize {
        self.bytes().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(target_os = "none")]
mod target {
    use super::{BLOCK_SIZE, CacheMemory, DeviceError, Disk};
    use crate::block::{BlockDevice, BlockError, MAX_REQUEST};
    use crate::rio::ProtectedRegion;

    // The driver's sector is the cache's block.
    const _: () = assert!(crate::arch::virtio_blk::BLOCK_SIZE == BLOCK_SIZE);

    fn convert(error: BlockError) -> DeviceError {
        match error {
            BlockError::OutOfRange => DeviceError::OutOfRange,
            BlockError::BadBuffer | BlockError::Device => DeviceError::Failed,
        }
    }

    impl Disk for BlockDevice {
        const MAX_BLOCKS: usize = MAX_REQUEST / BLOCK_SIZE;
        fn capacity_blocks(&self) -> u64 {
            BlockDevice::capacity_blocks(self)
        }
        async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
            BlockDevice::read(self, block, buf).await.map_err(convert)
        }
        async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError> {
            BlockDevice::write(self, block, buf).await.map_err(convert)
        }
        async fn flush(&self) -> Result<(), DeviceError> {
            BlockDevice::flush(self).await.map_err(convert)
        }
    }

    /// The Rio region: read-only except inside its own write routine.
    impl CacheMemory for &'static ProtectedRegion {
        fn bytes(&self) -> &[u8] {
            ProtectedRegion::bytes(self)
        }
        fn write(&mut self, offset: usize, data: &[u8]) {
            ProtectedRegion::write(self, offset, data)
        }
        fn write_many(&mut self, pieces: &[(usize, &[u8])]) {
            ProtectedRegion::write_many(self, pieces)
        }
    }
}

/// A shared disk is a disk (tests keep one across simulated reboots).
impl<T: Disk> Disk for &T {
    const MAX_BLOCKS: usize = T::MAX_BLOCKS;
    fn capacity_blocks(&self) -> u64 {
        T::capacity_blocks(self)
    }
    async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        T::read(self, block, buf).await
    }
    async fn write(&self, block: u64, buf: &[u8]) -> Result<(), DeviceError> {
        T::write(self, block, buf).await
    }
    async fn flush(&self) -> Result<(), DeviceError> {
        T::flush(self).await
    }
}
