//! The network device as the stack sees it.
//!
//! A [`Nic`] lends frames rather than copying them: a received frame is a
//! handle to the buffer the device wrote, read in place and then given back
//! ([`Nic::recycle`]); a frame to send is a handle to a buffer the device
//! will read, filled in place and then handed over ([`Nic::transmit`]).
//! The device's interrupt is a future-like [`Nic::poll_interrupt`], so the
//! stack's runner can sleep on it.
//!
//! Any transport fits behind the trait: virtio-mmio on microvm today,
//! virtio-pci on a PCI machine, the host-side [`crate::testing::Wire`].

use core::task::{Context, Poll};

pub use unikernel::MAX_FRAME;

/// A network device that lends its frame buffers.
pub trait Nic {
    /// A received frame: the bytes from the destination MAC address on.
    type Rx: AsRef<[u8]>;
    /// A buffer for a frame to send, at least [`MAX_FRAME`] bytes long.
    type Tx: AsMut<[u8]>;

    /// The device's MAC address.
    fn mac(&self) -> [u8; 6];

    /// The next received frame, if any.
    fn receive(&mut self) -> Option<Self::Rx>;

    /// Gives a received frame's buffer back to the device.
    fn recycle(&mut self, frame: Self::Rx);

    /// A buffer to send a frame from, if the device has room to send.
    fn transmit_buffer(&mut self) -> Option<Self::Tx>;

    /// Sends the first `len` bytes of `frame`; `len == 0` gives the buffer
    /// back unsent.
    fn transmit(&mut self, frame: Self::Tx, len: usize);

    /// Whether [`Nic::transmit_buffer`] would give a buffer now.
    fn can_transmit(&mut self) -> bool;

    /// Ready once the device has signalled (a frame arrived or a
    /// transmission finished) since the last ready poll, acknowledging the
    /// signal so that a later event signals again; otherwise registers
    /// `cx`'s waker for the next one.
    fn poll_interrupt(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// Hands what this poll posted and sent to the device (a device that
    /// batches its notifications kicks here, once); the runner calls it
    /// after every poll.
    fn flush(&mut self) {}
}
