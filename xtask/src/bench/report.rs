//! Plots for the reports (SVG through `plotters`).

use std::path::Path;

use plotters::prelude::*;

/// Draws each series' samples (microseconds) as points on a log-scaled
/// millisecond axis, one row per series: the distribution at a glance.
pub fn histogram_svg(path: &Path, title: &str, series: &[(&str, &[f64])]) -> anyhow::Result<()> {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|us| us / 1000.0))
        .collect();
    let max = all.iter().copied().fold(1.0f64, f64::max) * 1.2;
    let min = all.iter().copied().fold(max, f64::min).max(0.01) / 1.2;
    let root = SVGBackend::new(path, (900, 120 + 80 * series.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(160)
        .build_cartesian_2d((min..max).log_scale(), -0.5f64..(series.len() as f64 - 0.5))?;
    chart
        .configure_mesh()
        .x_desc("milliseconds (log scale)")
        .y_labels(series.len())
        .y_label_formatter(&|y| {
            let i = y.round() as usize;
            series
                .get(i)
                .map(|(name, _)| name.to_string())
                .unwrap_or_default()
        })
        .draw()?;
    for (row, (_, values)) in series.iter().enumerate() {
        let color = Palette99::pick(row);
        chart.draw_series(values.iter().enumerate().map(|(i, us)| {
            let jitter = ((i % 7) as f64 - 3.0) * 0.04;
            Circle::new((us / 1000.0, row as f64 + jitter), 3, color.filled())
        }))?;
    }
    root.present()?;
    Ok(())
}
