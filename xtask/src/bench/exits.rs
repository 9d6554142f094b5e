//! Costs that transfer to KVM: guest instructions and exit-class events.
//!
//! Timings under TCG move with the host's load; two figures do not, and
//! they predict what a guest costs under KVM:
//!
//! - **guest instructions**, from QEMU's instruction counter: with
//!   `-icount shift=0` QMP's `query-replay` reports the instructions the
//!   vCPU has executed (halted time does not count), read before and after
//!   a workload;
//! - **exit-class events**, what costs a VM exit under KVM, from QEMU's
//!   trace events ([`crate::qemu::EXIT_EVENTS`]) in a log file: device
//!   interrupts (`virtio_notify`), APIC timer interrupts
//!   (`apic_local_deliver`), APIC and I/O APIC register accesses,
//!   virtio-mmio register reads and writes (a queue notification is one
//!   such write: `virtio_queue_notify` is counted beside, not on top) and
//!   serial port writes.
//!
//! A [`Probe`] is attached to a [`Qemu`] before it starts; [`Probe::mark`]
//! takes a snapshot (log offset, instruction count) and [`Counts::between`]
//! counts what happened between two.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::qemu::Qemu;

/// Exit-class events by class, and guest instructions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub instructions: f64,
    /// Device interrupts injected (`virtio_notify`).
    pub device_irqs: f64,
    /// Local APIC timer interrupts (`apic_local_deliver`).
    pub timer_irqs: f64,
    pub apic_writes: f64,
    pub apic_reads: f64,
    pub ioapic: f64,
    pub mmio_reads: f64,
    /// virtio-mmio register writes, queue notifications included.
    pub mmio_writes: f64,
    /// Of the writes, queue notifications.
    pub notifies: f64,
    /// Serial register writes (every byte printed is one).
    pub serial: f64,
}

impl Counts {
    /// Every exit-class event (notifications are inside `mmio_writes`).
    pub fn exits(&self) -> f64 {
        self.device_irqs
            + self.timer_irqs
            + self.apic_writes
            + self.apic_reads
            + self.ioapic
            + self.mmio_reads
            + self.mmio_writes
            + self.serial
    }

    /// Adds one trace line's event; false if it is not one of ours.
    fn count(&mut self, line: &str) -> bool {
        // The log backend writes `[pid@time:]name args`.
        let name = line
            .rsplit_once(':')
            .filter(|(head, _)| head.contains('@'))
            .map_or(line, |(_, tail)| tail);
        let name = name.split_whitespace().next().unwrap_or("");
        let slot = match name {
            "virtio_notify" => &mut self.device_irqs,
            "apic_local_deliver" => &mut self.timer_irqs,
            "apic_mem_writel" => &mut self.apic_writes,
            "apic_mem_readl" => &mut self.apic_reads,
            "ioapic_mem_read" | "ioapic_mem_write" => &mut self.ioapic,
            "virtio_mmio_read" => &mut self.mmio_reads,
            "virtio_mmio_write_offset" => &mut self.mmio_writes,
            "virtio_queue_notify" => &mut self.notifies,
            "serial_write" => &mut self.serial,
            _ => return false,
        };
        *slot += 1.0;
        true
    }

    /// Counts the trace lines in `text`.
    pub fn from_trace(text: &str) -> Counts {
        let mut counts = Counts::default();
        for line in text.lines() {
            counts.count(line);
        }
        counts
    }

    /// Every figure divided by `n` (per request, per round trip).
    pub fn per(&self, n: f64) -> Counts {
        let f = |v: f64| v / n;
        Counts {
            instructions: f(self.instructions),
            device_irqs: f(self.device_irqs),
            timer_irqs: f(self.timer_irqs),
            apic_writes: f(self.apic_writes),
            apic_reads: f(self.apic_reads),
            ioapic: f(self.ioapic),
            mmio_reads: f(self.mmio_reads),
            mmio_writes: f(self.mmio_writes),
            notifies: f(self.notifies),
            serial: f(self.serial),
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "instructions": self.instructions, "exits": self.exits(),
            "device_irqs": self.device_irqs, "timer_irqs": self.timer_irqs,
            "apic_writes": self.apic_writes, "apic_reads": self.apic_reads,
            "ioapic": self.ioapic, "mmio_reads": self.mmio_reads,
            "mmio_writes": self.mmio_writes, "notifies": self.notifies,
            "serial": self.serial,
        })
    }
}

/// A point in a guest's life: trace log offset and instructions so far.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    offset: u64,
    instructions: u64,
}

/// The instruments attached to one QEMU.
pub struct Probe {
    dir: PathBuf,
    qmp: Option<(BufReader<UnixStream>, UnixStream)>,
}

impl Probe {
    /// Sets `qemu` up for counting: icount, a QMP socket and the trace
    /// log, in a fresh directory under `target/bench/probe/`.
    pub fn attach(qemu: &mut Qemu, name: &str) -> anyhow::Result<Probe> {
        let dir = super::out_dir()
            .join("probe")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        qemu.icount = true;
        qemu.qmp = Some(dir.join("qmp.sock"));
        qemu.trace = Some(dir.join("trace.log"));
        Ok(Probe { dir, qmp: None })
    }

    fn trace_path(&self) -> PathBuf {
        self.dir.join("trace.log")
    }

    /// The whole trace log so far.
    pub fn trace(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.trace_path()).unwrap_or_default())
    }

    fn qmp(&mut self) -> anyhow::Result<&mut (BufReader<UnixStream>, UnixStream)> {
        if self.qmp.is_none() {
            let path = self.dir.join("qmp.sock");
            let start = Instant::now();
            let stream = loop {
                match UnixStream::connect(&path) {
                    Ok(stream) => break stream,
                    Err(_) if start.elapsed() < Duration::from_secs(30) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(e).context("cannot reach QEMU's QMP socket"),
                }
            };
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut greeting = String::new();
            reader.read_line(&mut greeting)?;
            let mut pair = (reader, stream);
            command(&mut pair, "qmp_capabilities")?;
            self.qmp = Some(pair);
        }
        Ok(self.qmp.as_mut().expect("connected above"))
    }

    /// Instructions the guest has executed so far.
    pub fn instructions(&mut self) -> anyhow::Result<u64> {
        let reply = command(self.qmp()?, "query-replay")?;
        reply["icount"]
            .as_u64()
            .context("query-replay gave no icount (is -icount on?)")
    }

    /// A snapshot to count from or to.
    pub fn mark(&mut self) -> anyhow::Result<Mark> {
        let instructions = self.instructions()?;
        // QEMU flushes its log after every event; the file's length is
        // where the events so far end.
        let offset = std::fs::metadata(self.trace_path()).map_or(0, |m| m.len());
        Ok(Mark {
            offset,
            instructions,
        })
    }

    /// What happened between two marks.
    pub fn between(&self, from: Mark, to: Mark) -> anyhow::Result<Counts> {
        let mut file = std::fs::File::open(self.trace_path()).context("no trace log")?;
        file.seek(SeekFrom::Start(from.offset))?;
        let mut bytes = Vec::new();
        file.take(to.offset.saturating_sub(from.offset))
            .read_to_end(&mut bytes)?;
        let mut counts = Counts::from_trace(&String::from_utf8_lossy(&bytes));
        counts.instructions = to.instructions.saturating_sub(from.instructions) as f64;
        Ok(counts)
    }

    /// The directory with the QMP socket and the trace log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.trace_path());
    }
}

fn command(qmp: &mut (BufReader<UnixStream>, UnixStream), name: &str) -> anyhow::Result<Value> {
    writeln!(qmp.1, "{}", json!({ "execute": name }))?;
    loop {
        let mut line = String::new();
        if qmp.0.read_line(&mut line)? == 0 {
            bail!("QMP closed while waiting for {name}");
        }
        let reply: Value = serde_json::from_str(&line).context("QMP reply is not JSON")?;
        if reply.get("event").is_some() {
            continue;
        }
        if let Some(error) = reply.get("error") {
            bail!("QMP {name}: {error}");
        }
        return Ok(reply["return"].clone());
    }
}

/// Serial output rebuilt from `serial_write` events: the bytes written to
/// the data register (offset 0 with the divisor latch off), each with the
/// index of its trace line, so a line of output can be found in the trace.
pub fn serial_bytes(trace: &str) -> Vec<(usize, u8)> {
    let mut dlab = false;
    let mut bytes = Vec::new();
    for (index, line) in trace.lines().enumerate() {
        let Some(rest) = line.split("serial_write").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let mut field = |name: &str| {
            words
                .by_ref()
                .skip_while(|w| *w != name)
                .nth(1)
                .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        };
        let (Some(addr), Some(value)) = (field("addr"), field("val")) else {
            continue;
        };
        match addr {
            0 if !dlab => bytes.push((index, value as u8)),
            3 => dlab = value & 0x80 != 0,
            _ => {}
        }
    }
    bytes
}

/// The events before the console first shows `ready`, and the serial
/// bytes among them (those that printed something before it).
pub fn before_line(trace: &str, ready: &str) -> Option<(Counts, usize)> {
    let bytes = serial_bytes(trace);
    let text: Vec<u8> = bytes.iter().map(|&(_, b)| b).collect();
    let at = text
        .windows(ready.len())
        .position(|w| w == ready.as_bytes())?;
    let line_index = bytes[at].0;
    let head: String = trace
        .lines()
        .take(line_index)
        .collect::<Vec<_>>()
        .join("\n");
    Some((Counts::from_trace(&head), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
1234@1.000:serial_write write addr 0x03 val 0x80
1234@1.000:serial_write write addr 0x00 val 0x01
1234@1.000:serial_write write addr 0x03 val 0x03
1234@1.001:apic_mem_writel 0xf0 = 0x1ff
1234@1.002:ioapic_mem_write ctx 0 addr 0x10 size 4 val 0x10000
serial_write write addr 0x00 val 0x48
serial_write write addr 0x00 val 0x69
virtio_mmio_write_offset virtio_mmio_write offset 0x50 val 0x1
virtio_queue_notify vdev 0x1 n 1 vq 0x2
";

    #[test]
    fn counts_every_class_and_not_notifies_twice() {
        let counts = Counts::from_trace(TRACE);
        assert_eq!(counts.serial, 5.0);
        assert_eq!(counts.apic_writes, 1.0);
        assert_eq!(counts.ioapic, 1.0);
        assert_eq!(counts.mmio_writes, 1.0);
        assert_eq!(counts.notifies, 1.0);
        assert_eq!(counts.exits(), 8.0);
        assert_eq!(counts.per(2.0).exits(), 4.0);
    }

    #[test]
    fn serial_text_skips_the_divisor_latch() {
        let text: Vec<u8> = serial_bytes(TRACE).iter().map(|&(_, b)| b).collect();
        assert_eq!(text, b"Hi");
        let (before, printed) = before_line(TRACE, "Hi").unwrap();
        assert_eq!(printed, 0, "no byte was printed before the line");
        assert_eq!(before.serial, 3.0, "the three set-up writes come first");
        assert_eq!(before.apic_writes, 1.0);
        assert!(before_line(TRACE, "Bye").is_none());
    }
}
