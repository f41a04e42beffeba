//! PNG plots of a run: TTFT CDF, ITL CDF and output throughput over time, one panel each.
//! Text is rendered with the DejaVu Sans font bundled by the `dejavu` crate, so no system font
//! or fontconfig is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::client::{Outcome, RequestRecord};

const FONT: &str = "sans-serif";
const MAX_CDF_POINTS: usize = 2000;

fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_err() {
            tracing::warn!("cannot load the bundled font; plot text will be missing");
        }
    });
}

/// Writes the three-panel PNG for `records` of a run that lasted `duration_s`.
pub fn write_png(path: &Path, records: &[RequestRecord], duration_s: f64) -> Result<()> {
    ensure_font();
    let ok: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .collect();
    let ttft: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ms).collect();
    let itl: Vec<f64> = ok.iter().flat_map(|r| r.itl_ms.iter().copied()).collect();
    let throughput = throughput_per_second(&ok, duration_s);

    let root = BitMapBackend::new(path, (1000, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let panels = root.split_evenly((3, 1));
    draw_cdf(
        &panels[0],
        "TTFT CDF",
        "time to first token (ms)",
        ttft,
        &BLUE,
    )?;
    draw_cdf(&panels[1], "ITL CDF", "inter-token latency (ms)", itl, &RED)?;
    draw_throughput(&panels[2], &throughput)?;
    root.present()
        .map_err(|e| anyhow!("cannot write plot {}: {e}", path.display()))?;
    Ok(())
}

/// Output tokens per one-second bucket of the run. A request's tokens are spread over its text
/// chunks (servers may send several tokens per chunk).
pub fn throughput_per_second(ok: &[&RequestRecord], duration_s: f64) -> Vec<(f64, f64)> {
    let buckets = duration_s.ceil().max(1.0) as usize;
    let mut counts = vec![0.0f64; buckets];
    for r in ok {
        let times = r.chunk_times_ms();
        if times.is_empty() {
            continue;
        }
        let per_chunk = r.output_tokens as f64 / times.len() as f64;
        for t in times {
            let b = ((t / 1000.0) as usize).min(buckets - 1);
            counts[b] += per_chunk;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as f64, c))
        .collect()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_cdf(
    area: &Area<'_>,
    title: &str,
    x_desc: &str,
    mut xs: Vec<f64>,
    color: &RGBColor,
) -> Result<()> {
    xs.sort_by(f64::total_cmp);
    let x_max = xs.last().copied().unwrap_or(1.0).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..1f64)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("fraction")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    let n = xs.len();
    let step = n.div_ceil(MAX_CDF_POINTS).max(1);
    let start = xs.first().map(|&x| (x, 0.0));
    let points: Vec<(f64, f64)> = start
        .into_iter()
        .chain(
            xs.iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i + 1 == n)
                .map(|(i, &x)| (x, (i + 1) as f64 / n as f64)),
        )
        .collect();
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

fn draw_throughput(area: &Area<'_>, points: &[(f64, f64)]) -> Result<()> {
    let x_max = points.last().map_or(1.0, |p| p.0 + 1.0);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("output throughput", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("tokens / s")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            GREEN.stroke_width(2),
        ))
        .map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}
