//! What picoserve needs from a platform, on Rootstock: a timer and a
//! socket. Both are thin: the socket's halves are `net`'s own
//! `embedded-io-async` implementations; picoserve's writer trait (it
//! lends a buffer to format into) is a small local buffer in front of
//! `net`'s `Write`.

use embedded_io_async::{ErrorType, Write as _};
use net::{IoError, ReadHalf, TcpStream, WriteHalf};
use picoserve::mem::{BorrowedBuffer, BorrowedCursor};
use picoserve::time::Duration;
use unikernel::task;

/// The runtime marker picoserve's traits are generic over.
pub struct Rootstock;

/// picoserve's timer on the kernel's timers.
pub struct Timer;

impl picoserve::Timer<Rootstock> for Timer {
    async fn delay(&self, duration: Duration) {
        task::sleep(unikernel::time::Duration::from_millis(duration.as_millis())).await
    }
}

/// One accepted connection, as picoserve sees it.
pub struct Socket(pub TcpStream);

impl picoserve::io::Socket<Rootstock> for Socket {
    type Error = IoError;
    type ReadHalf<'a> = ReadHalf<'a>;
    type WriteHalf<'a> = Writer<'a>;

    fn split(&mut self) -> (ReadHalf<'_>, Writer<'_>) {
        let (read, write) = self.0.split();
        (read, Writer(write))
    }

    async fn abort<T: picoserve::Timer<Rootstock>>(
        self,
        _timeouts: &picoserve::Timeouts,
        _timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        self.0.abort();
        Ok(())
    }

    async fn shutdown<T: picoserve::Timer<Rootstock>>(
        mut self,
        _timeouts: &picoserve::Timeouts,
        _timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        // FIN after what was written; dropping the stream lingers until
        // the close completes.
        self.0.shutdown();
        Ok(())
    }
}

/// The writing half as picoserve's `Write`.
pub struct Writer<'a>(WriteHalf<'a>);

/// Bytes formatted per `write_with` (picoserve retries in pieces when a
/// response line does not fit).
const LEND: usize = 512;

impl ErrorType for Writer<'_> {
    type Error = IoError;
}

impl embedded_io_async::Write for Writer<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.0.flush().await
    }
}

impl picoserve::io::Write for Writer<'_> {
    async fn write_with<F: FnOnce(BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, IoError> {
        let mut space = [0u8; LEND];
        let mut buffer = BorrowedBuffer::new(&mut space);
        let result = f(buffer.unfilled());
        self.0.write_all(buffer.filled()).await?;
        Ok(result)
    }
}
