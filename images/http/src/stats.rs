//! The counters behind `/stats`, and their JSON (written by `serde_json`,
//! which the graft host links into the image already).

use alloc::string::String;
use core::cell::Cell;

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

    /// The `/stats` document. `net` holds the stack's frame counters,
    /// `heap` the kernel heap's (bytes in use, bytes in the heap).
    pub fn to_json(&self, uptime: Duration, net: &net::NetStats, heap: (usize, usize)) -> String {
        let document = serde_json::json!({
            "uptime_ms": uptime.as_millis(),
            "connections": self.connections.get(),
            "active_connections": self.active.get(),
            "requests": self.requests.get(),
            "bytes_received": self.bytes_received.get(),
            "bytes_sent": self.bytes_sent.get(),
            "responses": {
                "2xx": self.ok.get(),
                "4xx": self.client_errors.get(),
                "5xx": self.server_errors.get(),
            },
            "net": {
                "rx_frames": net.port.rx_frames,
                "tx_frames": net.port.tx_frames,
                "rx_dropped": net.port.rx_dropped,
                "tx_lost": net.port.tx_lost,
                "polls": net.polls,
                "sockets": net.sockets,
            },
            "heap": {
                "used_bytes": heap.0,
                "size_bytes": heap.1,
            },
        });
        // Numbers and fixed keys only: serialising cannot fail.
        let mut json = serde_json::to_string(&document).unwrap_or_default();
        json.push('\n');
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
        let json = stats.to_json(
            Duration::from_millis(1234),
            &net::NetStats::default(),
            (4096, 1 << 20),
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["uptime_ms"], 1234);
        assert_eq!(value["connections"], 2);
        assert_eq!(value["active_connections"], 1);
        assert_eq!(value["requests"], 2);
        assert_eq!(value["bytes_received"], 100);
        assert_eq!(value["bytes_sent"], 1050);
        assert_eq!(
            value["responses"],
            serde_json::json!({"2xx": 1, "4xx": 1, "5xx": 0})
        );
        assert_eq!(value["net"]["rx_frames"], 0);
        assert_eq!(value["net"]["sockets"], 0);
        assert_eq!(
            value["heap"],
            serde_json::json!({"used_bytes": 4096, "size_bytes": 1 << 20})
        );
        assert!(json.ends_with("}\n"));
    }
}
