//! The stack on the machine's virtio-net device: [`Nic`] for the kernel's
//! driver (`unikernel::virtio_net`, in `unikernel/src/arch/virtio_net.rs`,
//! which owns the queues and the buffers lent to the device), and opening
//! a [`Stack`] on it.

use core::task::{Context, Poll};

use unikernel::virtio_net::{NetDevice, OpenError, RxFrame, TxFrame};

use crate::config::Config;
use crate::nic::Nic;
use crate::policy::RxPolicy;
use crate::stack::Stack;

impl Nic for NetDevice {
    type Rx = RxFrame;
    type Tx = TxFrame;

    fn mac(&self) -> [u8; 6] {
        NetDevice::mac(self)
    }

    fn receive(&mut self) -> Option<RxFrame> {
        NetDevice::receive(self)
    }

    fn recycle(&mut self, frame: RxFrame) {
        NetDevice::recycle(self, frame)
    }

    fn transmit_buffer(&mut self) -> Option<TxFrame> {
        NetDevice::transmit_buffer(self)
    }

    fn transmit(&mut self, frame: TxFrame, len: usize) {
        NetDevice::transmit(self, frame, len)
    }

    fn can_transmit(&mut self) -> bool {
        NetDevice::can_transmit(self)
    }

    fn poll_interrupt(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        NetDevice::poll_interrupt(self, cx)
    }

    fn flush(&mut self) {
        NetDevice::flush(self)
    }
}

/// Starts the stack on the first virtio-net device with receive policy
/// `P` and `config` (a boot-time TSC reading makes the random seed).
pub fn open<P: RxPolicy>(config: Config) -> Result<Stack, OpenError> {
    open_with(config, P::default())
}

/// [`open`] with a receive policy the caller built.
pub fn open_with<P: RxPolicy>(mut config: Config, policy: P) -> Result<Stack, OpenError> {
    let device = NetDevice::open()?;
    unikernel::arch::phases::phase("virtio-net");
    config.random_seed ^= unikernel::arch::cycles_since_entry();
    let stack = Stack::start_with(device, config, policy);
    unikernel::arch::phases::phase("network up");
    Ok(stack)
}
