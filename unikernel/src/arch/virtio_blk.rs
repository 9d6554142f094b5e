//! virtio-blk as an async block device.
//!
//! Requests go through virtio-drivers' non-blocking API and complete on the
//! device's interrupt. The request header, status and data buffer are owned
//! by the driver (a DMA bounce buffer), never borrowed from the caller: a
//! caller's future can be dropped mid-request without leaving the device
//! writing into freed memory; the next request first finishes the
//! outstanding one. Requests are serialised by an [`AsyncLock`].

use alloc::boxed::Box;
use alloc::vec;
use core::cell::RefCell;

use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::SomeTransport;

use super::irq::IrqLine;
use super::virtio::{KernelHal, take};
use crate::sync::AsyncLock;

/// Size of one block (a virtio sector).
pub const BLOCK_SIZE: usize = SECTOR_SIZE;
/// Largest single request, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Why a block request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The buffer is empty, not a multiple of [`BLOCK_SIZE`] or larger
    /// than [`MAX_REQUEST`] (the caller's mistake).
    BadBuffer,
    /// The request reaches past the end of the disk (the caller's mistake).
    OutOfRange,
    /// The device refused or failed the request.
    Device,
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

struct Inner {
    device: VirtIOBlk<KernelHal, SomeTransport<'static>>,
    request: Box<BlkReq>,
    response: Box<BlkResp>,
    buffer: Box<[u8]>,
    /// A request the device still owns: (token, direction, length).
    in_flight: Option<(u16, Direction, usize)>,
}

/// A virtio-blk disk.
pub struct BlockDevice {
    inner: RefCell<Inner>,
    irq: IrqLine,
    lock: AsyncLock,
    capacity: u64,
}

impl BlockDevice {
    /// Opens the first virtio-blk device, if any.
    pub fn open() -> Option<BlockDevice> {
        let found = take(DeviceType::Block)?;
        let mut device = match VirtIOBlk::<KernelHal, _>::new(found.transport) {
            Ok(device) => device,
            Err(error) => {
                log::error!(target: "block", "virtio-blk at {:#x} failed to start: {error:?}", found.address);
                return None;
            }
        };
        let irq = match IrqLine::claim(found.gsi) {
            Ok(irq) => irq,
            Err(error) => {
                log::error!(target: "block", "no interrupt line for virtio-blk: {error:?}");
                return None;
            }
        };
        device.enable_interrupts();
        let capacity = device.capacity();
        log::info!(target: "block", "virtio-blk: {} blocks ({} KiB){}", capacity,
            capacity * BLOCK_SIZE as u64 / 1024, if device.readonly() { ", read-only" } else { "" });
        Some(BlockDevice {
            inner: RefCell::new(Inner {
                device,
                request: Box::default(),
                response: Box::default(),
                buffer: vec![0; MAX_REQUEST].into_boxed_slice(),
                in_flight: None,
            }),
            irq,
            lock: AsyncLock::new(),
            capacity,
        })
    }

    /// Disk size in blocks.
    pub fn capacity_blocks(&self) -> u64 {
        self.capacity
    }

    fn check(&self, block: u64, len: usize) -> Result<(), BlockError> {
        if len == 0 || !len.is_multiple_of(BLOCK_SIZE) || len > MAX_REQUEST {
            return Err(BlockError::BadBuffer);
        }
        let blocks = (len / BLOCK_SIZE) as u64;
        match block.checked_add(blocks) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(BlockError::OutOfRange),
        }
    }

    /// Reads `buf.len() / BLOCK_SIZE` blocks starting at `block`.
    pub async fn read(&self, block: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(block, buf.len())?;
        let _guard = self.lock.lock().await;
        self.finish_in_flight().await?;
        self.submit(block, buf.len(), Direction::Read)?;
        self.finish_in_flight().await?;
        buf.copy_from_slice(&self.inner.borrow().buffer[..buf.len()]);
        Ok(())
    }

    /// Writes `buf` to the disk starting at `block`.
    pub async fn write(&self, block: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(block, buf.len())?;
        let _guard = self.lock.lock().await;
        self.finish_in_flight().await?;
        self.inner.borrow_mut().buffer[..buf.len()].copy_from_slice(buf);
        self.submit(block, buf.len(), Direction::Write)?;
        self.finish_in_flight().await
    }

    /// Asks the device to make completed writes durable (polls; rare).
    pub async fn flush(&self) -> Result<(), BlockError> {
        let _guard = self.lock.lock().await;
        self.finish_in_flight().await?;
        self.inner
            .borrow_mut()
            .device
            .flush()
            .map_err(|_| BlockError::Device)
    }

    fn submit(&self, block: u64, len: usize, direction: Direction) -> Result<(), BlockError> {
        let mut inner = self.inner.borrow_mut();
        let Inner {
            device,
            request,
            response,
            buffer,
            in_flight,
        } = &mut *inner;
        let buffer = &mut buffer[..len];
        // SAFETY: the request, response and buffer are boxed and owned by this
        // device; they are not touched again until `finish_in_flight` pops the
        // request (in_flight records it), and they outlive the request.
        let token = unsafe {
            match direction {
                Direction::Read => device.read_blocks_nb(block as usize, request, buffer, response),
                Direction::Write => {
                    device.write_blocks_nb(block as usize, request, buffer, response)
                }
            }
        }
        .map_err(|_| BlockError::Device)?;
        *in_flight = Some((token, direction, len));
        Ok(())
    }

    /// Waits for the outstanding request (if any) to complete.
    async fn finish_in_flight(&self) -> Result<(), BlockError> {
        loop {
            {
                let mut inner = self.inner.borrow_mut();
                let Some((token, direction, len)) = inner.in_flight else {
                    return Ok(());
                };
                inner.device.ack_interrupt();
                if inner.device.peek_used() == Some(token) {
                    inner.in_flight = None;
                    let Inner {
                        device,
                        request,
                        response,
                        buffer,
                        ..
                    } = &mut *inner;
                    let buffer = &mut buffer[..len];
                    // SAFETY: the same request/buffer/response passed to the
                    // `*_nb` call that returned `token` (see `submit`).
                    let result = unsafe {
                        match direction {
                            Direction::Read => {
                                device.complete_read_blocks(token, request, buffer, response)
                            }
                            Direction::Write => {
                                device.complete_write_blocks(token, request, buffer, response)
                            }
                        }
                    };
                    return result.map_err(|_| BlockError::Device);
                }
            }
            self.irq.wait().await;
        }
    }
}
