//! The embedded async Rust ecosystem's I/O traits on Rootstock's sockets.
//!
//! [`TcpStream`] implements `embedded-io-async`'s `Read` and `Write` (and
//! `ErrorType`), so crates written against those traits (HTTP servers and
//! clients, MQTT, TLS) take a Rootstock connection unchanged. Those crates
//! often want the two directions at once (read the next request while a
//! response is written): [`TcpStream::split`] gives a [`ReadHalf`] and a
//! [`WriteHalf`] that borrow one stream.
//!
//! One error type, [`IoError`], serves both directions, since the traits'
//! users (picoserve's `Socket`, edge-nal's `TcpSplit`) ask for one. It keeps
//! the meaning of [`ReadError`] and [`WriteError`] and maps to
//! `embedded_io::ErrorKind` as a reader of those traits expects.

use core::future::poll_fn;

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

use super::TcpStream;
use crate::error::{AcceptError, BindError, ConnectError, ReadError, WriteError};
use crate::time::deadline;

/// A read or write on a [`TcpStream`] failed, or (through the `edge-nal`
/// traits) opening, binding or accepting one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The peer reset the connection or stopped answering.
    Reset,
    /// Nothing could be read, written, connected or accepted within the
    /// time-out.
    TimedOut,
    /// This side already shut the connection down for writing.
    Closed,
    /// The peer refused the connection.
    Refused,
    /// No route to the address, an IPv6 address, or no address yet.
    Unaddressable,
    /// Port 0, or a port already bound.
    InvalidPort,
}

impl From<ConnectError> for IoError {
    fn from(error: ConnectError) -> IoError {
        match error {
            ConnectError::Refused => IoError::Refused,
            ConnectError::TimedOut => IoError::TimedOut,
            ConnectError::Unaddressable => IoError::Unaddressable,
        }
    }
}

impl From<AcceptError> for IoError {
    fn from(error: AcceptError) -> IoError {
        match error {
            AcceptError::TimedOut => IoError::TimedOut,
        }
    }
}

impl From<BindError> for IoError {
    fn from(error: BindError) -> IoError {
        match error {
            BindError::InvalidPort => IoError::InvalidPort,
        }
    }
}

impl From<ReadError> for IoError {
    fn from(error: ReadError) -> IoError {
        match error {
            ReadError::Reset => IoError::Reset,
            ReadError::TimedOut => IoError::TimedOut,
        }
    }
}

impl From<WriteError> for IoError {
    fn from(error: WriteError) -> IoError {
        match error {
            WriteError::Reset => IoError::Reset,
            WriteError::TimedOut => IoError::TimedOut,
            WriteError::Closed => IoError::Closed,
        }
    }
}

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IoError::Reset => "connection reset",
            IoError::TimedOut => "timed out",
            IoError::Closed => "connection shut down for writing",
            IoError::Refused => "connection refused",
            IoError::Unaddressable => "address unreachable or unsupported",
            IoError::InvalidPort => "port 0 or already bound",
        })
    }
}

impl core::error::Error for IoError {}

impl embedded_io_async::Error for IoError {
    fn kind(&self) -> ErrorKind {
        match self {
            IoError::Reset => ErrorKind::ConnectionReset,
            IoError::TimedOut => ErrorKind::TimedOut,
            IoError::Closed => ErrorKind::BrokenPipe,
            IoError::Refused => ErrorKind::ConnectionRefused,
            IoError::Unaddressable => ErrorKind::AddrNotAvailable,
            IoError::InvalidPort => ErrorKind::InvalidInput,
        }
    }
}

impl ErrorType for TcpStream {
    type Error = IoError;
}

impl Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        Ok(TcpStream::read(self, buf).await?)
    }
}

impl Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        Ok(TcpStream::write(self, buf).await?)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        Ok(TcpStream::flush(self).await?)
    }
}

/// The reading direction of a split [`TcpStream`].
pub struct ReadHalf<'a>(pub(super) &'a TcpStream);

/// The writing direction of a split [`TcpStream`].
pub struct WriteHalf<'a>(pub(super) &'a TcpStream);

impl TcpStream {
    /// Both directions at once, each usable from its own future.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }
}

impl ErrorType for ReadHalf<'_> {
    type Error = IoError;
}

impl Read for ReadHalf<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let stream = self.0;
        deadline(stream.deadline(), poll_fn(|cx| stream.poll_read(cx, buf)))
            .await
            .map_err(|_| IoError::TimedOut)?
            .map_err(IoError::from)
    }
}

impl ErrorType for WriteHalf<'_> {
    type Error = IoError;
}

impl Write for WriteHalf<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let stream = self.0;
        deadline(stream.deadline(), poll_fn(|cx| stream.poll_write(cx, buf)))
            .await
            .map_err(|_| IoError::TimedOut)?
            .map_err(IoError::from)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        Ok(self.0.wait_acknowledged().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_io_async::Error as _;

    #[test]
    fn errors_keep_their_meaning_and_map_to_embedded_io_kinds() {
        assert_eq!(
            IoError::from(ReadError::Reset).kind(),
            ErrorKind::ConnectionReset
        );
        assert_eq!(
            IoError::from(ReadError::TimedOut).kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            IoError::from(WriteError::Reset).kind(),
            ErrorKind::ConnectionReset
        );
        assert_eq!(
            IoError::from(WriteError::TimedOut).kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            IoError::from(WriteError::Closed).kind(),
            ErrorKind::BrokenPipe
        );
        assert_eq!(
            IoError::from(ConnectError::Refused).kind(),
            ErrorKind::ConnectionRefused
        );
        assert_eq!(
            IoError::from(ConnectError::TimedOut).kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            IoError::from(ConnectError::Unaddressable).kind(),
            ErrorKind::AddrNotAvailable
        );
        assert_eq!(
            IoError::from(AcceptError::TimedOut).kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            IoError::from(BindError::InvalidPort).kind(),
            ErrorKind::InvalidInput
        );
    }
}
