//! The soak's report: its targets checked, the figures behind them, and a
//! plot over time of heap, load, grafts and errors, with the warm
//! reboots' windows shaded.

use std::path::Path;

use plotters::prelude::*;
use serde_json::{Value, json};

use super::{HEAP_TOLERANCE, HTTP_CLIENTS, MEMORY, RESP_CLIENTS, Sample, Soak};
use crate::bench::{median, verdict};

/// One image's heap: its level after warm-up and at the end (medians of
/// quiet samples, bytes), and the range of every sample.
#[derive(Clone, Copy, Debug)]
pub struct Heap {
    pub warm: Option<f64>,
    pub end: Option<f64>,
    pub low: Option<u64>,
    pub high: Option<u64>,
    pub quiet_samples: (usize, usize),
}

impl Heap {
    fn of(soak: &Soak, heap: fn(&Sample) -> Option<u64>, quiet: fn(&Sample) -> bool) -> Heap {
        let window = soak.options.window();
        let level = |from: f64, to: f64| {
            let values: Vec<f64> = soak
                .samples
                .iter()
                .filter(|s| s.at >= from && s.at < to && quiet(s))
                .filter_map(|s| heap(s).map(|b| b as f64))
                .collect();
            (median(values.iter().copied()), values.len())
        };
        let (warm, warm_n) = level(window, 2.0 * window);
        let (end, end_n) = level(soak.duration - window, f64::INFINITY);
        let all = soak.samples.iter().filter_map(heap);
        Heap {
            warm,
            end,
            low: all.clone().min(),
            high: all.max(),
            quiet_samples: (warm_n, end_n),
        }
    }

    /// (end − warm) / warm.
    pub fn change(&self) -> Option<f64> {
        Some((self.end? - self.warm?) / self.warm?)
    }

    pub fn ok(&self) -> bool {
        self.change().is_some_and(|c| c.abs() <= HEAP_TOLERANCE)
    }
}

/// The soak's figures and verdicts.
pub struct Report<'a> {
    soak: &'a Soak,
    /// Failed requests outside every warm reboot's window, and inside.
    outside: Vec<&'a super::clients::Failure>,
    inside: usize,
    http: Heap,
    kv: Heap,
}

impl<'a> Report<'a> {
    pub fn new(soak: &'a Soak) -> Report<'a> {
        let excused = |f: &super::clients::Failure| {
            soak.reboots
                .iter()
                .any(|&(start, end)| f.start <= end && f.end >= start)
        };
        let outside: Vec<_> = soak.failures.iter().filter(|f| !excused(f)).collect();
        Report {
            inside: soak.failures.len() - outside.len(),
            outside,
            http: Heap::of(soak, |s| s.http_heap, |s| s.http_quiet),
            kv: Heap::of(soak, |s| s.kv_heap, |s| s.kv_quiet),
            soak,
        }
    }

    fn churn_ok(&self) -> bool {
        let soak = self.soak;
        soak.counts.errors.is_empty()
            && soak.leftover_grafts == 0
            && soak.reboots.len() == soak.options.reboots
    }

    /// The targets: (name, met, what was measured).
    fn targets(&self) -> Vec<(&'static str, bool, String)> {
        let soak = self.soak;
        let heap = |h: &Heap| match (h.warm, h.end, h.change()) {
            (Some(warm), Some(end), Some(change)) => {
                format!("{} → {} ({:+.1}%)", kib(warm), kib(end), change * 100.0)
            }
            _ => format!(
                "not measured ({} and {} quiet samples)",
                h.quiet_samples.0, h.quiet_samples.1
            ),
        };
        vec![
            (
                "0 failed requests outside the reboot windows",
                self.outside.is_empty(),
                format!(
                    "{} outside, {} inside the windows",
                    self.outside.len(),
                    self.inside
                ),
            ),
            (
                "0 acknowledged writes lost",
                soak.lost.is_empty(),
                format!("{} lost", soak.lost.len()),
            ),
            (
                "http heap at the end within 5% of after warm-up",
                self.http.ok(),
                heap(&self.http),
            ),
            (
                "kv heap at the end within 5% of after warm-up",
                self.kv.ok(),
                heap(&self.kv),
            ),
            (
                "every graft operation as expected, none left, every reboot done",
                self.churn_ok(),
                format!(
                    "{} unexpected, {} left installed, {} of {} reboots",
                    soak.counts.errors.len(),
                    soak.leftover_grafts,
                    soak.reboots.len(),
                    soak.options.reboots
                ),
            ),
        ]
    }

    /// The targets missed, with what was measured.
    pub fn missed(&self) -> Vec<String> {
        self.targets()
            .into_iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(name, _, got)| format!("{name}: {got}"))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let soak = self.soak;
        let o = &soak.options;
        let last = soak.samples.last().cloned().unwrap_or_default();
        let counts = &soak.counts;
        let windows: Vec<String> = soak
            .reboots
            .iter()
            .map(|(start, end)| format!("{start:.0} s (+{:.1} s)", end - start))
            .collect();
        let mut md = format!(
            "# Soak ({mode})\n\n\
             `http` and `kv` (fault-injection build; {build}; QEMU {mode}, {MEMORY} RAM each, user \
             networking) side by side for {duration:.0} s. Load: {HTTP_CLIENTS} keep-alive HTTP clients \
             (`GET /hello.txt`, every response checked) and {RESP_CLIENTS} RESP clients (SET of a fresh \
             value, then GET of another key checked against every acknowledged SET). Graft churn through \
             both control channels: {ops} operations — {loads} loads, {replaces} replaces, {unloads} \
             unloads; {contained} hostile modules loaded and aborted and unloaded by the image, with the \
             right cause logged; {refused} modules refused at load. Warm reboots of `kv` (`DEBUG PANIC`): \
             {windows}. Heap levels: medians of the samples taken while no graft was installed in that \
             image, the first {window:.0} s after a {window:.0} s warm-up and the last {window:.0} s.\n\n\
             | target | verdict | measured |\n|---|---|---|\n",
            mode = o.accel.name().to_uppercase(),
            build = if o.release { "release" } else { "debug" },
            duration = soak.duration,
            ops =
                counts.loads + counts.replaces + counts.unloads + counts.contained + counts.refused,
            loads = counts.loads,
            replaces = counts.replaces,
            unloads = counts.unloads,
            contained = counts.contained,
            refused = counts.refused,
            windows = if windows.is_empty() {
                "none".into()
            } else {
                windows.join(", ")
            },
            window = o.window(),
        );
        for (name, ok, got) in self.targets() {
            md.push_str(&format!("| {name} | **{}** | {got} |\n", verdict(ok)));
        }
        let rate = |n: u64| n as f64 / soak.duration.max(1.0);
        let range = |h: &Heap| match (h.low, h.high) {
            (Some(low), Some(high)) => format!("{}–{}", kib(low as f64), kib(high as f64)),
            _ => "—".into(),
        };
        md.push_str(&format!(
            "\n| | HTTP | RESP |\n|---|---:|---:|\n\
             | requests answered | {} ({:.0}/s) | {} ({:.0}/s) |\n\
             | failed requests (outside / inside reboot windows) | {} / {} | {} / {} |\n\
             | heap in use, lowest–highest sample (http / kv) | {} | {} |\n\n\
             For scale (shared/ANCHORS.md): Nooks survived 99% of injected driver crashes; here \
             {} of {} hostile graft loads were contained, and {} of {} warm reboots lost no \
             acknowledged write. {} of the hostile modules were stopped by a CPU exception in \
             their code; the runtime unloads such a graft and drops its store without running it \
             again.\n",
            last.http_ok,
            rate(last.http_ok),
            last.resp_ok,
            rate(last.resp_ok),
            self.count("http", false),
            self.count("http", true),
            self.count("resp", false),
            self.count("resp", true),
            range(&self.http),
            range(&self.kv),
            counts.contained,
            counts.contained
                + counts
                    .errors
                    .iter()
                    .filter(|e| e.contains("Hostile"))
                    .count() as u64,
            if soak.lost.is_empty() {
                soak.reboots.len()
            } else {
                0
            },
            soak.reboots.len(),
            counts.cpu_faults,
        ));
        let problems = self
            .outside
            .iter()
            .map(|f| {
                format!(
                    "{} request {:.1}–{:.1} s: {}",
                    f.client, f.start, f.end, f.what
                )
            })
            .chain(soak.lost.iter().cloned())
            .chain(counts.errors.iter().cloned());
        for problem in problems.take(20) {
            md.push_str(&format!("\n- {problem}"));
        }
        if !self.missed().is_empty() {
            for (image, console) in ["http", "kv"].iter().zip(&soak.consoles) {
                md.push_str(&format!(
                    "\n\nThe end of `{image}`'s console:\n\n```\n{console}\n```"
                ));
            }
        }
        md.push_str("\n\nPlot: `target/bench/soak.svg`.\n");
        md
    }

    fn count(&self, client: &str, inside: bool) -> usize {
        let outside = self.outside.iter().filter(|f| f.client == client).count();
        if inside {
            self.soak
                .failures
                .iter()
                .filter(|f| f.client == client)
                .count()
                - outside
        } else {
            outside
        }
    }

    pub fn json(&self) -> Value {
        let soak = self.soak;
        let heap = |h: &Heap| json!({"warm": h.warm, "end": h.end, "change": h.change(), "low": h.low, "high": h.high});
        json!({
            "mode": soak.options.accel.name(),
            "release": soak.options.release,
            "seconds": soak.duration,
            "targets": self.targets().iter().map(|(n, ok, got)| json!({"target": n, "pass": ok, "measured": got})).collect::<Vec<_>>(),
            "heap": {"http": heap(&self.http), "kv": heap(&self.kv)},
            "reboots": soak.reboots,
            "churn": {
                "loads": soak.counts.loads, "replaces": soak.counts.replaces, "unloads": soak.counts.unloads,
                "contained": soak.counts.contained, "cpu_faults": soak.counts.cpu_faults, "refused": soak.counts.refused, "errors": soak.counts.errors,
            },
            "failures_outside": self.outside.len(),
            "failures_inside": self.inside,
            "lost": soak.lost,
            "samples": soak.samples.iter().map(|s| json!({
                "at": s.at, "http_heap": s.http_heap, "kv_heap": s.kv_heap, "http_active": s.http_active,
                "http_requests": s.http_requests, "kv_commands": s.kv_commands, "http_grafts": s.http_grafts,
                "kv_grafts": s.kv_grafts, "http_ok": s.http_ok, "resp_ok": s.resp_ok, "failures": s.failures,
                "churns": s.churns,
            })).collect::<Vec<_>>(),
        })
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.0} KiB", bytes / 1024.0)
}

/// A line: (label, points).
type Line = (&'static str, Vec<(f64, f64)>);

/// Four panels over time — heap, requests/s, installed grafts, failures —
/// with the reboot windows shaded.
pub fn plot(path: &Path, soak: &Soak) -> anyhow::Result<()> {
    let s = &soak.samples;
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        s.iter().filter_map(|x| Some((x.at, f(x)?))).collect()
    };
    let rate = |f: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
        s.windows(2)
            .map(|w| {
                (
                    w[1].at,
                    (f(&w[1]) - f(&w[0])) as f64 / (w[1].at - w[0].at).max(1e-3),
                )
            })
            .collect()
    };
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1 << 20) as f64);
    let panels: Vec<(&str, Vec<Line>)> = vec![
        (
            "heap in use, MiB",
            vec![
                ("http", series(&|x| mib(x.http_heap))),
                ("kv", series(&|x| mib(x.kv_heap))),
            ],
        ),
        (
            "requests/s (clients) and open HTTP connections",
            vec![
                ("HTTP req/s", rate(|x| x.http_ok)),
                ("RESP req/s", rate(|x| x.resp_ok)),
                (
                    "http active connections",
                    series(&|x| x.http_active.map(|a| a as f64)),
                ),
            ],
        ),
        (
            "grafts installed, and graft operations / 100",
            vec![
                ("http", series(&|x| x.http_grafts.map(|g| g as f64))),
                ("kv", series(&|x| x.kv_grafts.map(|g| g as f64))),
                (
                    "operations / 100",
                    series(&|x| Some(x.churns as f64 / 100.0)),
                ),
            ],
        ),
        (
            "failed requests (cumulative; reboot windows shaded)",
            vec![("failures", series(&|x| Some(x.failures as f64)))],
        ),
    ];
    let root = SVGBackend::new(path, (1000, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((panels.len(), 1));
    let x_max = soak.duration.max(1.0);
    for (area, (title, lines)) in areas.iter().zip(&panels) {
        let y_max = lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        chart.draw_series(soak.reboots.iter().map(|&(start, end)| {
            Rectangle::new(
                [(start, 0.0), (end.max(start + 0.5), y_max)],
                RGBColor(255, 200, 200).filled(),
            )
        }))?;
        for (i, (label, points)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 15, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
