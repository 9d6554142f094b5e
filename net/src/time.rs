//! Time at the borders: the kernel's clock to smoltcp's, and time-outs for
//! any socket future.

use core::future::Future;
use core::pin::pin;
use core::task::Poll;

use unikernel::task;
use unikernel::time::{Duration, Instant};

/// The kernel's monotonic time as smoltcp's.
pub(crate) fn to_smoltcp(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now.as_nanos() / 1000).unwrap_or(i64::MAX))
}

/// A smoltcp duration as the kernel's.
pub(crate) fn from_smoltcp(duration: smoltcp::time::Duration) -> Duration {
    Duration::from_micros(duration.total_micros())
}

/// The kernel's duration as smoltcp's.
pub(crate) fn duration_to_smoltcp(duration: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// An operation did not complete in the time it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// Runs `future` for at most `limit`.
pub async fn timeout<T>(limit: Duration, future: impl Future<Output = T>) -> Result<T, TimedOut> {
    deadline(Some(task::current_time().saturating_add(limit)), future).await
}

/// Runs `future` until it completes or `deadline` passes (`None`: no limit).
pub(crate) async fn deadline<T>(
    deadline: Option<Instant>,
    future: impl Future<Output = T>,
) -> Result<T, TimedOut> {
    let mut future = pin!(future);
    let Some(deadline) = deadline else {
        return Ok(future.await);
    };
    let mut sleep = pin!(task::sleep_until(deadline));
    core::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
