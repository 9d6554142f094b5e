//! A test device: two [`Nic`]s joined by a virtual cable, in memory, and
//! a virtual clock to run tasks on.
//!
//! It lets the whole stack run on the host, like smoltcp's loopback
//! device: two stacks talk to each other, or a test plays the far end by
//! hand ([`Wire::inject`], [`Wire::take_sent`]). The cable can lose frames
//! on purpose, to exercise retransmission. [`run`] drives the kernel's
//! executor on [`VirtualClock`], where idling jumps straight to the next
//! timer: time-outs and retransmissions take no real time.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::{Context, Poll, Waker};

use unikernel::task::{Executor, Fifo, Platform};
use unikernel::time::Instant;

use crate::nic::{MAX_FRAME, Nic};

/// Virtual time for host tests: idling jumps to the next deadline; idling
/// with none means every task waits for something that cannot happen.
pub struct VirtualClock {
    pub now: Instant,
    pub idles: u64,
}

impl Platform for VirtualClock {
    fn now(&mut self) -> Instant {
        self.now
    }

    fn idle(&mut self, deadline: Option<Instant>) {
        self.idles += 1;
        assert!(self.idles < 1_000_000, "the test makes no progress");
        self.now = deadline.expect("deadlock: every task waits and no timer is set");
    }
}

/// Runs `main` (and the tasks it spawns, stacks' runners included) on a
/// [`VirtualClock`] until it returns.
pub fn run<T: 'static>(main: impl core::future::Future<Output = T> + 'static) -> T {
    let mut clock = VirtualClock {
        now: Instant::from_nanos(1),
        idles: 0,
    };
    Executor::<Fifo>::default().block_on(&mut clock, main)
}

/// Frames a side can have waiting before its peer's sends are refused.
pub const QUEUE: usize = 64;

#[derive(Default)]
struct End {
    /// Frames on their way to this end.
    inbox: VecDeque<Vec<u8>>,
    fired: bool,
    waker: Option<Waker>,
    /// Copies of frames this end sent, when capturing.
    sent: Option<Vec<Vec<u8>>>,
    /// Frames this end sent (delivered or lost).
    sent_count: u64,
}

#[derive(Default)]
struct Cable {
    ends: [End; 2],
    /// Lose every n-th frame (both directions).
    lose_every: Option<u64>,
    frames: u64,
}

/// One end of a virtual cable.
pub struct Wire {
    cable: Rc<RefCell<Cable>>,
    side: usize,
    mac: [u8; 6],
}

impl Wire {
    /// Two devices joined back to back.
    pub fn pair(mac_a: [u8; 6], mac_b: [u8; 6]) -> (Wire, Wire) {
        let cable = Rc::new(RefCell::new(Cable::default()));
        (
            Wire {
                cable: cable.clone(),
                side: 0,
                mac: mac_a,
            },
            Wire {
                cable,
                side: 1,
                mac: mac_b,
            },
        )
    }

    /// Another handle on the same end (for a test to watch or feed it
    /// while a stack owns the device).
    pub fn handle(&self) -> Wire {
        Wire {
            cable: self.cable.clone(),
            side: self.side,
            mac: self.mac,
        }
    }

    /// Loses every `n`-th frame from now on (`None`: lose nothing).
    pub fn lose_every(&self, n: Option<u64>) {
        let mut cable = self.cable.borrow_mut();
        cable.lose_every = n.filter(|&n| n > 0);
        cable.frames = 0;
    }

    /// Starts keeping a copy of every frame this end sends.
    pub fn capture(&self) {
        self.cable.borrow_mut().ends[self.side].sent = Some(Vec::new());
    }

    /// The frames this end sent since the last call (when capturing).
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        let mut cable = self.cable.borrow_mut();
        cable.ends[self.side]
            .sent
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    /// How many frames this end has sent.
    pub fn sent_count(&self) -> u64 {
        self.cable.borrow().ends[self.side].sent_count
    }

    /// Delivers `frame` to this end as if the peer had sent it.
    pub fn inject(&self, frame: &[u8]) {
        deliver(&mut self.cable.borrow_mut().ends[self.side], frame.to_vec());
    }
}

fn deliver(end: &mut End, frame: Vec<u8>) {
    end.inbox.push_back(frame);
    end.fired = true;
    if let Some(waker) = end.waker.take() {
        waker.wake();
    }
}

impl Nic for Wire {
    type Rx = Vec<u8>;
    type Tx = Vec<u8>;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        let mut cable = self.cable.borrow_mut();
        let was_full = cable.ends[self.side].inbox.len() >= QUEUE;
        let frame = cable.ends[self.side].inbox.pop_front();
        if was_full {
            // Room again: like a transmit-complete interrupt for the peer.
            let peer = &mut cable.ends[1 - self.side];
            peer.fired = true;
            if let Some(waker) = peer.waker.take() {
                waker.wake();
            }
        }
        frame
    }

    fn recycle(&mut self, _frame: Vec<u8>) {}

    fn transmit_buffer(&mut self) -> Option<Vec<u8>> {
        self.can_transmit().then(|| vec![0; MAX_FRAME])
    }

    fn transmit(&mut self, mut frame: Vec<u8>, len: usize) {
        if len == 0 {
            return;
        }
        frame.truncate(len);
        let mut cable = self.cable.borrow_mut();
        cable.frames += 1;
        let lost = cable
            .lose_every
            .is_some_and(|n| cable.frames.is_multiple_of(n));
        let me = &mut cable.ends[self.side];
        me.sent_count += 1;
        if let Some(sent) = me.sent.as_mut() {
            sent.push(frame.clone());
        }
        if !lost {
            deliver(&mut cable.ends[1 - self.side], frame);
        }
    }

    fn can_transmit(&mut self) -> bool {
        self.cable.borrow().ends[1 - self.side].inbox.len() < QUEUE
    }

    fn poll_interrupt(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut cable = self.cable.borrow_mut();
        let end = &mut cable.ends[self.side];
        if end.fired {
            end.fired = false;
            Poll::Ready(())
        } else {
            end.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// A stack's settings for a test on a [`Wire`]: `address`/24, no gateway,
/// and a random seed of its own (the address's last byte), so that two
/// stacks on one wire pick different ports and sequence numbers.
pub fn config(address: crate::Ipv4Addr) -> crate::Config {
    crate::Config {
        ipv4: crate::Ipv4Config::Static {
            address,
            prefix: 24,
            gateway: None,
        },
        random_seed: u64::from(address.octets()[3]),
        ..crate::Config::default()
    }
}
