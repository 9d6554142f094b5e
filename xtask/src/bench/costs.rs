//! Per-request costs that transfer to KVM, beside the Linux guest's:
//! guest instructions and exit-class events ([`super::exits`]) per TCP
//! round trip (`echo`), per keep-alive GET (`http`, 1 and 32
//! connections) and per Redis request (`kv`, GET and SET at `-P 1` and
//! `-P 16`).
//!
//! Each guest boots once more for this, under `-icount shift=0` with the
//! exit events traced (both slow it down, so no timing comes from these
//! boots), on QEMU's user network with a forwarded port like the timing
//! runs. Connections are opened and the code paths warmed up before the
//! first mark; the counts between the two marks are divided by the
//! requests made. The figures are deterministic enough to compare one
//! change with the next: a rerun moves them by a few percent, where TCG
//! timings move by a factor of two.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::exits::{Counts, Probe};

/// `ROOTSTOCK_BENCH_OURS_ONLY=1` skips the Linux guest in these counts
/// (for a quick look at one change; the reports then show no ratio).
pub fn linux_wanted() -> bool {
    std::env::var_os("ROOTSTOCK_BENCH_OURS_ONLY").is_none()
}

/// What a row measures and its target (exit-class events per request).
pub struct Row {
    pub what: String,
    pub ours: Result<Counts, String>,
    pub linux: Result<Counts, String>,
    pub target: Option<f64>,
}

/// Marks, runs `work` (which returns how many requests it made), marks.
pub fn per_request(
    probe: &mut Probe,
    work: impl FnOnce() -> anyhow::Result<usize>,
) -> anyhow::Result<Counts> {
    let from = probe.mark()?;
    let n = work()?;
    // Let the last replies' ACKs and timers settle into the window.
    std::thread::sleep(Duration::from_millis(200));
    let to = probe.mark()?;
    anyhow::ensure!(n > 0, "no requests were made");
    Ok(probe.between(from, to)?.per(n as f64))
}

/// `rounds` 64-byte round trips on one connection, after a warm-up.
pub fn echo(probe: &mut Probe, addr: SocketAddr, rounds: usize) -> anyhow::Result<Counts> {
    let mut stream = super::net::load::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let message = [0x5a_u8; 64];
    let mut reply = [0u8; 64];
    let mut trip = |stream: &mut TcpStream| -> anyhow::Result<()> {
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        anyhow::ensure!(reply == message, "the echo came back changed");
        Ok(())
    };
    for _ in 0..100 {
        trip(&mut stream)?;
    }
    per_request(probe, || {
        for _ in 0..rounds {
            trip(&mut stream)?;
        }
        Ok(rounds)
    })
}

/// One keep-alive connection's GET: sends it and reads the whole reply;
/// the body of a 200.
pub(crate) fn get(reader: &mut BufReader<TcpStream>, path: &str) -> anyhow::Result<Vec<u8>> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes())?;
    let mut length = None;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection");
        }
        if first {
            anyhow::ensure!(line.starts_with("HTTP/1.1 200"), "reply: {line:?}");
            first = false;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0u8; length.context("no Content-Length")?];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// `requests` keep-alive GETs of `path` over `connections` connections
/// (each one sequential, all at once: `ab -k -c N`), after a warm-up.
pub fn http(
    probe: &mut Probe,
    addr: SocketAddr,
    path: &str,
    connections: usize,
    requests: usize,
) -> anyhow::Result<Counts> {
    let mut streams = Vec::new();
    for _ in 0..connections {
        let stream = super::net::load::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut reader = BufReader::new(stream);
        get(&mut reader, path)?;
        streams.push(reader);
    }
    let each = requests.div_ceil(connections);
    per_request(probe, || {
        let done: Vec<anyhow::Result<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = streams
                .iter_mut()
                .map(|reader| {
                    scope.spawn(move || {
                        for _ in 0..each {
                            get(reader, path)?;
                        }
                        Ok(each)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("client panicked")))
                })
                .collect()
        });
        done.into_iter().sum()
    })
}

/// `redis-benchmark -t TEST -P PIPELINE -n REQUESTS -c CLIENTS`.
pub fn redis(
    probe: &mut Probe,
    addr: SocketAddr,
    test: &str,
    pipeline: usize,
    clients: usize,
    requests: usize,
) -> anyhow::Result<Counts> {
    let run = |n: usize| -> anyhow::Result<usize> {
        let status = Command::new("redis-benchmark")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
            .args(["-n", &n.to_string(), "-t", test, "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run redis-benchmark (redis-tools)")?;
        anyhow::ensure!(status.success(), "redis-benchmark failed: {status}");
        Ok(n)
    };
    run(requests / 10)?;
    per_request(probe, || run(requests))
}

fn cell(counts: &Result<Counts, String>, f: impl Fn(&Counts) -> f64) -> String {
    match counts {
        Ok(c) => {
            let v = f(c);
            if v >= 1000.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        }
        Err(_) => "—".into(),
    }
}

/// The Markdown table: per row, exit-class events by class and
/// instructions, ours and the Linux guest's, the ratio and the target.
pub fn markdown(title: &str, unit: &str, rows: &[Row]) -> String {
    let mut md = format!(
        "\n## {title}\n\nPer {unit}, under `-icount shift=0` (TCG) with QEMU's trace events; \
         exit-class events = device + timer interrupts, APIC and I/O APIC accesses, virtio-mmio \
         reads and writes (queue notifications are writes, shown apart, not added twice), serial \
         writes. Rootstock / Linux guest.\n\n\
         | what | exits | notifies | device irqs | timer irqs | APIC w / r | virtio-mmio r / w | instructions | exits ratio | target |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for row in rows {
        let both = |f: &dyn Fn(&Counts) -> f64| {
            format!("{} / {}", cell(&row.ours, f), cell(&row.linux, f))
        };
        let ratio = match (&row.ours, &row.linux) {
            (Ok(o), Ok(l)) if l.exits() > 0.0 => format!("{:.2}", o.exits() / l.exits()),
            _ => "—".into(),
        };
        let target = match (row.target, &row.ours) {
            (Some(t), Ok(o)) => {
                let at_most_linux = row.linux.as_ref().map_or(true, |l| o.exits() <= l.exits());
                format!(
                    "≤ {t} and ≤ Linux: {}",
                    super::verdict(o.exits() <= t && at_most_linux)
                )
            }
            _ => String::new(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} {} | {} {} | {} | {ratio} | {target} |\n",
            row.what,
            both(&Counts::exits),
            both(&|c| c.notifies),
            both(&|c| c.device_irqs),
            both(&|c| c.timer_irqs),
            both(&|c| c.apic_writes),
            both(&|c| c.apic_reads),
            both(&|c| c.mmio_reads),
            both(&|c| c.mmio_writes),
            both(&|c| c.instructions),
        ));
    }
    for row in rows {
        for (who, counts) in [("Rootstock", &row.ours), ("Linux guest", &row.linux)] {
            if let Err(e) = counts {
                md.push_str(&format!("\n{who}, {}: not measured: {e}\n", row.what));
            }
        }
    }
    md
}

pub fn json(rows: &[Row]) -> Value {
    let side = |c: &Result<Counts, String>| match c {
        Ok(c) => c.to_json(),
        Err(e) => json!({ "error": e }),
    };
    Value::Array(
        rows.iter()
            .map(|r| json!({ "what": r.what, "rootstock": side(&r.ours), "linux": side(&r.linux), "target": r.target }))
            .collect(),
    )
}

/// How every costs section starts (`markdown`, `boot_costs::report`).
pub const SECTION: &str = "\n## Costs that transfer to KVM";

/// Appends `md` to the report `name` (`net.md`) and `value` under `key`
/// to `name`'s JSON twin, creating either if missing.
pub fn append(name: &str, md: &str, key: &str, value: Value) -> anyhow::Result<()> {
    let dir = super::out_dir();
    let md_path = dir.join(format!("{name}.md"));
    let mut text = std::fs::read_to_string(&md_path).unwrap_or_default();
    // One costs section per report: an earlier run's is replaced.
    if let Some(at) = text.find(SECTION) {
        text.truncate(at);
    }
    text.push_str(md);
    std::fs::write(&md_path, text)?;
    let json_path = dir.join(format!("{name}.json"));
    let mut doc: Value = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    doc[key] = value;
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
    println!("{md}");
    Ok(())
}
