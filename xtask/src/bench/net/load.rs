//! The load generators: a TCP round-trip client (ours, 64-byte messages)
//! and `wrk` for HTTP, with its report parsed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Message size of the round-trip test.
pub const MESSAGE: usize = 64;

/// Times `rounds` round trips of a [`MESSAGE`]-byte message through an
/// echo server at `addr`, after `warmup` untimed ones; microseconds each.
pub fn round_trips(addr: SocketAddr, warmup: usize, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let mut stream = connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut message = [0u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        message[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let start = Instant::now();
        stream.write_all(&message)?;
        stream
            .read_exact(&mut back)
            .with_context(|| format!("round trip {i}: no echo"))?;
        let elapsed = start.elapsed();
        if back != message {
            bail!("round trip {i}: the echo differs from the message");
        }
        if i >= warmup {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    Ok(samples)
}

/// Connects, retrying while the forwarded port is not accepting yet.
pub fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => return Ok(stream),
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                return Err(e).with_context(|| format!("cannot connect to {addr}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What one `wrk` run reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WrkReport {
    pub requests_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub requests: u64,
    /// Connect/read/write/timeout errors plus non-2xx responses.
    pub errors: u64,
}

/// Runs `wrk` against `url` with `connections` for `seconds`.
pub fn wrk(url: &str, connections: usize, seconds: u64) -> anyhow::Result<WrkReport> {
    let out = Command::new("wrk")
        .args([
            "--threads",
            "1",
            "--connections",
            &connections.to_string(),
            "--duration",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "--latency",
            url,
        ])
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// A wrk duration ("812.00us", "1.23ms", "2.00s") in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(value * scale)
}

/// Reads the numbers this bench uses out of wrk's text report.
pub fn parse_wrk(text: &str) -> Option<WrkReport> {
    let mut report = WrkReport::default();
    let mut seen = (false, false, false);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => {
                report.requests_per_sec = value.parse().ok()?;
                seen.0 = true;
            }
            ["50%", value] => {
                report.p50_us = duration_us(value)?;
                seen.1 = true;
            }
            ["99%", value] => {
                report.p99_us = duration_us(value)?;
                seen.2 = true;
            }
            [count, "requests", "in", ..] => report.requests = count.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                report.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                report.errors += count.parse::<u64>().ok()?;
            }
            _ => {}
        }
    }
    (seen == (true, true, true)).then_some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:8080/hello.txt
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.60ms  106.81ms   1.67s    97.83%
    Req/Sec    13.10k     2.60k   17.89k    68.00%
  Latency Distribution
     50%    2.01ms
     75%    2.45ms
     90%    3.67ms
     99%  544.67us
  65212 requests in 5.01s, 9.02MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  13017.60
Transfer/sec:      1.80MB
";

    #[test]
    fn reads_wrk_reports() {
        let report = parse_wrk(SAMPLE).unwrap();
        assert_eq!(report.requests_per_sec, 13017.6);
        assert!((report.p50_us - 2010.0).abs() < 1e-6);
        assert_eq!(report.p99_us, 544.67);
        assert_eq!(report.requests, 65212);
        assert_eq!(report.errors, 7);
    }

    #[test]
    fn a_report_without_numbers_is_refused() {
        assert_eq!(parse_wrk("unable to connect to 127.0.0.1:1"), None);
    }
}
