//! What can go wrong, per operation, and whose fault it was.

use core::fmt;

/// Binding a port failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindError {
    /// Port 0, or a port another socket of this stack already bound (the
    /// caller's mistake).
    InvalidPort,
}

/// Accepting a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// No connection arrived within the listener's time-out.
    TimedOut,
}

/// Opening a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The peer refused or reset the connection (its side).
    Refused,
    /// No answer within the time-out (the peer or the network).
    TimedOut,
    /// The address is unspecified or no route leads to it, or the stack
    /// has no address yet (the caller's or the configuration's).
    Unaddressable,
}

/// Reading from a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The peer reset the connection or stopped answering.
    Reset,
    /// No data within the stream's time-out.
    TimedOut,
}

/// Writing to a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// This side already shut the connection down for writing (the
    /// caller's mistake).
    Closed,
    /// The peer reset the connection or stopped answering.
    Reset,
    /// No buffer space within the stream's time-out (the peer is not
    /// reading).
    TimedOut,
}

/// A UDP operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpError {
    /// The datagram is larger than the socket's buffer (the caller's).
    TooLarge,
    /// The destination is unspecified or has port 0 (the caller's).
    Unaddressable,
    /// Nothing arrived, or no buffer space, within the time-out.
    TimedOut,
}

/// A ping got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingError {
    /// No reply within the time-out.
    TimedOut,
    /// The address is unusable or the stack has none yet.
    Unaddressable,
}

macro_rules! display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}

display!(
    BindError,
    AcceptError,
    ConnectError,
    ReadError,
    WriteError,
    UdpError,
    PingError
);
