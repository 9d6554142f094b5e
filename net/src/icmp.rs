//! ICMP echo ("ping") from an image. Answering pings needs nothing here:
//! the interface replies to echo requests itself (unless the receive
//! policy drops them, as [`crate::NoPing`] does).

use alloc::vec;
use core::future::poll_fn;
use core::net::Ipv4Addr;
use core::task::Poll;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp::{self, Endpoint, PacketBuffer, PacketMetadata};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};
use unikernel::task;
use unikernel::time::Duration;

use crate::error::PingError;
use crate::stack::Stack;
use crate::time::deadline;

const PAYLOAD: &[u8] = b"rootstock ping";

/// Sends one echo request to `to` and waits up to `limit` for the reply;
/// returns the round-trip time.
pub async fn ping(stack: &Stack, to: Ipv4Addr, limit: Duration) -> Result<Duration, PingError> {
    if to.is_unspecified() || to.is_broadcast() {
        return Err(PingError::Unaddressable);
    }
    let start = task::current_time();
    let (handle, ident) = {
        let mut core = stack.core.borrow_mut();
        let ident = core.ephemeral_port();
        let mut socket = icmp::Socket::new(
            PacketBuffer::new(vec![PacketMetadata::EMPTY; 2], vec![0; 256]),
            PacketBuffer::new(vec![PacketMetadata::EMPTY; 2], vec![0; 256]),
        );
        socket
            .bind(Endpoint::Ident(ident))
            .map_err(|_| PingError::Unaddressable)?;
        let request = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: 1,
            data: PAYLOAD,
        };
        let buffer = socket
            .send(request.buffer_len(), IpAddress::Ipv4(to))
            .map_err(|_| PingError::Unaddressable)?;
        request.emit(
            &mut Icmpv4Packet::new_unchecked(buffer),
            &ChecksumCapabilities::default(),
        );
        let handle = core.add_socket(socket);
        core.kick();
        (handle, ident)
    };
    let reply = deadline(
        Some(start.saturating_add(limit)),
        poll_fn(|cx| {
            let mut core = stack.core.borrow_mut();
            let socket = core.sockets.get_mut::<icmp::Socket>(handle);
            while let Ok((data, from)) = socket.recv() {
                let Ok(packet) = Icmpv4Packet::new_checked(data) else {
                    continue;
                };
                let reply = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default());
                if let Ok(Icmpv4Repr::EchoReply { ident: i, .. }) = reply
                    && i == ident
                    && from == IpAddress::Ipv4(to)
                {
                    return Poll::Ready(());
                }
            }
            socket.register_recv_waker(cx.waker());
            Poll::Pending
        }),
    )
    .await;
    stack.core.borrow_mut().remove_socket(handle);
    reply
        .map(|()| task::current_time().saturating_duration_since(start))
        .map_err(|_| PingError::TimedOut)
}
