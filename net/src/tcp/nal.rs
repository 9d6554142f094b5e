//! `edge-nal`'s network-stack traits on Rootstock's stack: what a
//! third-party crate uses to open connections ([`TcpConnect`] on
//! [`Stack`]) and to listen ([`TcpBind`] on [`Stack`], [`TcpAccept`] on
//! [`TcpListener`]), with the stream-side traits it asks of the sockets
//! ([`Readable`], [`TcpSplit`], [`TcpShutdown`]).
//!
//! Why `edge-nal` rather than `embedded-nal-async`: `embedded-nal-async`
//! 0.9 has a client-side `TcpConnect` only, so a server cannot be written
//! against it; `edge-nal` covers connect, bind and accept, and it is what
//! the `edge-net` crates (`edge-http`'s server and client, `edge-mqtt`,
//! `edge-dhcp`) and `rs-matter` are written against. Both sit on
//! `embedded-io-async`, which the streams implement already (`io`).
//!
//! Sockets get the default [`TcpOptions`]; IPv6 addresses are refused
//! with [`IoError::Unaddressable`] (the stack is IPv4 only).

use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use edge_nal::{Close, Readable, TcpAccept, TcpBind, TcpConnect, TcpShutdown, TcpSplit};

use super::io::{IoError, ReadHalf, WriteHalf};
use super::{TcpListener, TcpOptions, TcpStream};
use crate::stack::Stack;

fn v4(address: SocketAddr) -> Result<SocketAddrV4, IoError> {
    match address {
        SocketAddr::V4(address) => Ok(address),
        SocketAddr::V6(_) => Err(IoError::Unaddressable),
    }
}

impl TcpConnect for Stack {
    type Error = IoError;
    type Socket<'a> = TcpStream;

    async fn connect(&self, remote: SocketAddr) -> Result<TcpStream, IoError> {
        Ok(TcpStream::connect(self, v4(remote)?, TcpOptions::default()).await?)
    }
}

impl TcpBind for Stack {
    type Error = IoError;
    type Accept<'a> = TcpListener;

    /// Listens on `local`'s port (on the stack's address, whatever
    /// `local`'s IPv4 address says).
    async fn bind(&self, local: SocketAddr) -> Result<TcpListener, IoError> {
        Ok(TcpListener::bind(
            self,
            v4(local)?.port(),
            TcpOptions::default(),
        )?)
    }
}

impl TcpAccept for TcpListener {
    type Error = IoError;
    type Socket<'a> = TcpStream;

    async fn accept(&self) -> Result<(SocketAddr, TcpStream), IoError> {
        let stream = TcpListener::accept(self).await?;
        let peer = stream
            .peer_addr()
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Ok((SocketAddr::V4(peer), stream))
    }
}

impl Readable for TcpStream {
    async fn readable(&mut self) -> Result<(), IoError> {
        poll_fn(|cx| self.poll_readable(cx)).await;
        Ok(())
    }
}

impl Readable for ReadHalf<'_> {
    async fn readable(&mut self) -> Result<(), IoError> {
        let stream = self.0;
        poll_fn(|cx| stream.poll_readable(cx)).await;
        Ok(())
    }
}

impl TcpSplit for TcpStream {
    type Read<'a> = ReadHalf<'a>;
    type Write<'a> = WriteHalf<'a>;

    fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        TcpStream::split(self)
    }
}

impl TcpShutdown for TcpStream {
    /// Closing the write half sends FIN after the data written and waits
    /// until the peer has acknowledged it all; the read half has nothing
    /// to close (what arrives is still read).
    async fn close(&mut self, what: Close) -> Result<(), IoError> {
        match what {
            Close::Read => Ok(()),
            Close::Write | Close::Both => {
                self.shutdown();
                Ok(self.wait_acknowledged().await?)
            }
        }
    }

    async fn abort(&mut self) -> Result<(), IoError> {
        self.abort_in_place();
        Ok(())
    }
}
