//! The stack: one smoltcp interface, its sockets, and the runner task that
//! moves frames between them and the device.
//!
//! All state sits in a [`Core`] behind `Rc<RefCell<..>>`, shared by the
//! runner and the socket handles; nobody holds the borrow across an
//! `.await`, and the executor is single-threaded, so a borrow never fails.
//! The runner owns the device (and the receive policy): it polls the
//! interface, then sleeps until the device interrupts, a socket "kicks" it
//! (data queued to send, a window opened, a socket closed), or smoltcp's
//! next protocol timer. Between polls, frames wait in the device's ring;
//! nothing spins.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::Ipv4Addr;
use core::pin::pin;
use core::task::{Poll, Waker};

use smoltcp::iface::{Config as IfaceConfig, Interface, PollIngressSingleResult, SocketSet};
use smoltcp::socket::tcp::State as TcpState;
use smoltcp::socket::{Socket, dhcpv4};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use unikernel::task;
use unikernel::time::{Duration, Instant};

use crate::config::{Config, Ipv4Config};
use crate::nic::Nic;
use crate::policy::RxPolicy;
use crate::port::{Port, PortStats};
use crate::tcp::{self, Listener};
use crate::time::{from_smoltcp, to_smoltcp};

/// Counters for an image's stats page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames through the receive policy and out to the device.
    pub port: PortStats,
    /// Interface polls by the runner.
    pub polls: u64,
    /// Connections handed to `accept`.
    pub accepted: u64,
    /// Sockets currently in the set.
    pub sockets: usize,
}

/// The largest number of sockets (of all kinds) a stack keeps at once;
/// past it, listeners stop making room for new connections (clients are
/// refused until connections close).
pub const MAX_SOCKETS: usize = 2048;

pub(crate) struct Core {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub listeners: Vec<Option<Listener>>,
    /// Sockets dropped by their owner with work left (a TCP close, UDP
    /// datagrams to send): (socket, give-up time).
    pub orphans: Vec<(smoltcp::iface::SocketHandle, Instant)>,
    dhcp: Option<smoltcp::iface::SocketHandle>,
    runner: Option<Waker>,
    kicked: bool,
    address_waiters: Vec<Waker>,
    /// An address to announce (gratuitous ARP) at the next poll.
    announce: Option<Ipv4Addr>,
    next_ephemeral: u16,
    pub stats: NetStats,
}

impl Core {
    /// Asks the runner to poll soon (something changed in a socket).
    pub fn kick(&mut self) {
        self.kicked = true;
        if let Some(waker) = self.runner.take() {
            waker.wake();
        }
    }

    /// Whether a new socket fits under [`MAX_SOCKETS`].
    pub fn has_room(&self) -> bool {
        self.stats.sockets < MAX_SOCKETS
    }

    pub fn add_socket<T: smoltcp::socket::AnySocket<'static>>(
        &mut self,
        socket: T,
    ) -> smoltcp::iface::SocketHandle {
        self.stats.sockets += 1;
        self.sockets.add(socket)
    }

    pub fn remove_socket(&mut self, handle: smoltcp::iface::SocketHandle) {
        self.stats.sockets -= 1;
        self.sockets.remove(handle);
    }

    /// A local port for an outgoing connection.
    pub fn ephemeral_port(&mut self) -> u16 {
        self.next_ephemeral = match self.next_ephemeral.wrapping_add(1) {
            p if p < 49152 => 49152,
            p => p,
        };
        self.next_ephemeral
    }

    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        // IPv4 is the only protocol this stack is built with.
        self.iface
            .ip_addrs()
            .iter()
            .map(|cidr| match cidr {
                IpCidr::Ipv4(v4) => *v4,
            })
            .next()
    }

    pub fn register_address_waiter(&mut self, waker: &Waker) {
        self.address_waiters.push(waker.clone());
    }

    /// One round: protocol timers, every received frame, every frame to
    /// send, housekeeping. Returns how long the runner may sleep.
    fn poll<D: smoltcp::phy::Device>(&mut self, now: Instant, device: &mut D) -> Option<Duration> {
        let now = to_smoltcp(now);
        self.kicked = false;
        self.stats.polls += 1;
        self.iface.poll_maintenance(now);
        loop {
            match self
                .iface
                .poll_ingress_single(now, device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                // A listener may just have lost a listening socket to a new
                // connection: replace it before the next SYN arrives.
                PollIngressSingleResult::SocketStateChanged => tcp::sweep_listeners(self),
            }
        }
        while self.iface.poll_egress(now, device, &mut self.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged
        {}
        tcp::sweep_listeners(self);
        self.reap_orphans(now);
        self.poll_dhcp();
        self.iface.poll_delay(now, &self.sockets).map(from_smoltcp)
    }

    /// Removes orphaned sockets whose last work is done (or overdue).
    fn reap_orphans(&mut self, now: smoltcp::time::Instant) {
        let now = Instant::from_nanos(now.total_micros() as u64 * 1000);
        let mut index = 0;
        while index < self.orphans.len() {
            let (handle, give_up) = self.orphans[index];
            let done = match self.sockets.get_mut::<Socket>(handle) {
                Socket::Tcp(tcp) => match tcp.state() {
                    TcpState::Closed | TcpState::TimeWait => true,
                    _ if now >= give_up => {
                        tcp.abort(); // sends a RST at the next poll, then reaped
                        false
                    }
                    _ => false,
                },
                Socket::Udp(udp) => udp.send_queue() == 0 || now >= give_up,
                _ => true,
            };
            if done {
                self.orphans.swap_remove(index);
                self.remove_socket(handle);
            } else {
                index += 1;
            }
        }
    }

    fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(config)) => Some((config.address, config.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some((address, router)) => {
                log::info!(target: "net", "DHCP: address {address}, gateway {router:?}");
                set_ipv4(&mut self.iface, address, router);
                self.announce = Some(address.address());
                for waker in self.address_waiters.drain(..) {
                    waker.wake();
                }
            }
            None => {
                log::warn!(target: "net", "DHCP: lease lost");
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
    }
}

fn set_ipv4(iface: &mut Interface, address: Ipv4Cidr, gateway: Option<Ipv4Addr>) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        let _ = addrs.push(IpCidr::Ipv4(address));
    });
    let routes = iface.routes_mut();
    routes.remove_default_ipv4_route();
    if let Some(gateway) = gateway {
        let _ = routes.add_default_ipv4_route(gateway);
    }
}

/// A running network stack; clones share it.
#[derive(Clone)]
pub struct Stack {
    pub(crate) core: Rc<RefCell<Core>>,
}

impl Stack {
    /// Starts a stack on `nic` with receive policy `P`, spawning its runner
    /// task.
    pub fn start<N: Nic + 'static, P: RxPolicy>(nic: N, config: Config) -> Stack {
        Stack::start_with(nic, config, P::default())
    }

    /// [`Stack::start`] with a policy the caller built (one that holds
    /// state of its own, such as a graft host).
    pub fn start_with<N: Nic + 'static, P: RxPolicy>(nic: N, config: Config, policy: P) -> Stack {
        let mac = nic.mac();
        let mut port = Port::new(nic, policy, config.management_port);
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = config.random_seed;
        let now = task::current_time();
        let mut iface = Interface::new(iface_config, &mut port, to_smoltcp(now));
        let mut sockets = SocketSet::new(vec![]);
        let mut dhcp = None;
        let mut announce = None;
        match config.ipv4 {
            Ipv4Config::Static {
                address,
                prefix,
                gateway,
            } => {
                set_ipv4(&mut iface, Ipv4Cidr::new(address, prefix), gateway);
                announce = Some(address);
            }
            Ipv4Config::Dhcp => dhcp = Some(sockets.add(dhcpv4::Socket::new())),
        }
        log::info!(target: "net", "stack up: {:?}, receive policy {}", config.ipv4, P::NAME);
        let core = Rc::new(RefCell::new(Core {
            iface,
            sockets,
            listeners: Vec::new(),
            orphans: Vec::new(),
            dhcp,
            runner: None,
            kicked: false,
            address_waiters: Vec::new(),
            announce,
            next_ephemeral: 49152 + (config.random_seed % 16384) as u16,
            stats: NetStats {
                sockets: usize::from(dhcp.is_some()),
                ..NetStats::default()
            },
        }));
        task::Builder::new()
            .name("net")
            .spawn(run(core.clone(), port));
        Stack { core }
    }

    /// The interface's IPv4 address and prefix, once it has one.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.core
            .borrow()
            .ipv4()
            .map(|cidr| (cidr.address(), cidr.prefix_len()))
    }

    /// Waits until the interface has an address (at once when static).
    pub async fn wait_for_address(&self) -> Ipv4Addr {
        core::future::poll_fn(|cx| {
            let mut core = self.core.borrow_mut();
            match core.ipv4() {
                Some(cidr) => Poll::Ready(cidr.address()),
                None => {
                    core.register_address_waiter(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    pub fn stats(&self) -> NetStats {
        self.core.borrow().stats
    }
}

/// The runner: polls the interface, then sleeps until there is work.
async fn run<N: Nic, P: RxPolicy>(core: Rc<RefCell<Core>>, mut port: Port<N, P>) {
    loop {
        let now = task::current_time();
        let delay = {
            let mut core = core.borrow_mut();
            if let Some(address) = core.announce.take() {
                port.announce(address);
            }
            let delay = core.poll(now, &mut port);
            port.nic().flush();
            core.stats.port = port.stats();
            delay
        };
        let deadline = match delay {
            // Frames are waiting to go out but the device is full: its
            // interrupt says when room frees up (the timer is a backstop).
            Some(Duration::ZERO) if !port.nic().can_transmit() => {
                Some(now.saturating_add(Duration::from_millis(1)))
            }
            Some(Duration::ZERO) => {
                task::yield_now().await;
                continue;
            }
            Some(delay) => Some(now.saturating_add(delay)),
            None => None,
        };
        let mut sleep = pin!(deadline.map(task::sleep_until));
        core::future::poll_fn(|cx| {
            {
                let mut core = core.borrow_mut();
                if core.kicked {
                    return Poll::Ready(());
                }
                core.runner = Some(cx.waker().clone());
            }
            if port.nic().poll_interrupt(cx).is_ready() {
                return Poll::Ready(());
            }
            match sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(()),
                _ => Poll::Pending,
            }
        })
        .await;
    }
}
