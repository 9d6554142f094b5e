//! The counters behind `/stats`, and their JSON.

use alloc::string::String;
use core::cell::Cell;
use core::fmt::Write as _;

use unikernel::time::Duration;

use crate::response::Status;

/// What the server has done since it started (one CPU: plain cells).
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: Cell<u64>,
    pub active: Cell<u64>,
    pub requests: Cell<u64>,
    pub bytes_received: Cell<u64>,
    pub bytes_sent: Cell<u64>,
    /// Responses by class: 2xx, 4xx, 5xx.
    pub ok: Cell<u64>,
    pub client_errors: Cell<u64>,
    pub server_errors: Cell<u64>,
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl Stats {
    pub fn connection_opened(&self) {
        add(&self.connections, 1);
        add(&self.active, 1);
    }

    pub fn connection_closed(&self) {
        self.active.set(self.active.get().saturating_sub(1));
    }

    pub fn received(&self, bytes: usize) {
        add(&self.bytes_received, bytes as u64);
    }

    /// One response of `status` with `bytes` on the wire.
    pub fn responded(&self, status: Status, bytes: usize) {
        add(&self.requests, 1);
        add(&self.bytes_sent, bytes as u64);
        match status.code() {
            200..=299 => add(&self.ok, 1),
            400..=499 => add(&self.client_errors, 1),
            _ => add(&self.server_errors, 1),
        }
    }

    /// The `/stats` document. `net` holds the stack's frame counters.
    pub fn to_json(&self, uptime: Duration, net: &net::NetStats) -> String {
        let mut json = String::with_capacity(320);
        let _ = writeln!(
            json,
            "{{\"uptime_ms\":{},\"connections\":{},\"active_connections\":{},\
             \"requests\":{},\"bytes_received\":{},\"bytes_sent\":{},\
             \"responses\":{{\"2xx\":{},\"4xx\":{},\"5xx\":{}}},\
             \"net\":{{\"rx_frames\":{},\"tx_frames\":{},\"rx_dropped\":{},\"tx_lost\":{},\"polls\":{},\"sockets\":{}}}}}",
            uptime.as_millis(),
            self.connections.get(),
            self.active.get(),
            self.requests.get(),
            self.bytes_received.get(),
            self.bytes_sent.get(),
            self.ok.get(),
            self.client_errors.get(),
            self.server_errors.get(),
            net.port.rx_frames,
            net.port.tx_frames,
            net.port.rx_dropped,
            net.port.tx_lost,
            net.polls,
            net.sockets,
        );
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_json() {
        let stats = Stats::default();
        stats.connection_opened();
        stats.connection_opened();
        stats.connection_closed();
        stats.received(100);
        stats.responded(Status::Ok, 1000);
        stats.responded(Status::NotFound, 50);
        let json = stats.to_json(Duration::from_millis(1234), &net::NetStats::default());
        for expected in [
            "\"uptime_ms\":1234",
            "\"connections\":2",
            "\"active_connections\":1",
            "\"requests\":2",
            "\"bytes_received\":100",
            "\"bytes_sent\":1050",
            "\"2xx\":1,\"4xx\":1,\"5xx\":0",
        ] {
            assert!(json.contains(expected), "{expected} missing from {json}");
        }
        assert!(json.starts_with('{') && json.trim_end().ends_with('}'));
    }
}
