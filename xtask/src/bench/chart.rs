//! `target/bench/results.png`: one bar panel per scenario's headline metric, every contender
//! side by side, with its median written above its bar.
use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::{
        FontStyle,
        text_anchor::{HPos, Pos, VPos},
    },
};

use super::{
    report::fmt_value,
    results::{Results, Status},
};

/// Debian's fonts-dejavu-core, which the bench installs: plotters draws text with ab_glyph from
/// a font registered at run time (no fontconfig at build time).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The panels: scenario, metric key, title.
const PANELS: [(u32, &str, &str); 9] = [
    (1, "req_per_s", "1. keep-alive: req/s (higher is better)"),
    (1, "p99_ms", "1. keep-alive: p99 ms (lower is better)"),
    (2, "req_per_s", "2. new connection per request: req/s"),
    (3, "p999_ms", "3. fixed rate: p99.9 ms (lower is better)"),
    (4, "gbit_per_s", "4. TCP bulk: Gbit/s"),
    (5, "failed", "5. failed requests during changes"),
    (6, "rss_mib", "6. RSS with idle connections, MiB"),
    (7, "req_per_s", "7. req/s: 10 services vs many"),
    (8, "req_per_s", "8. req/s: counting programs"),
];

/// Draws the chart for `results` into `path`.
pub fn draw(results: &Results, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1500, 1150)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, body) = root.split_vertically(50);
    title
        .draw_text(
            &format!(
                "flowproxy vs HAProxy, nginx, Traefik, Caddy and a direct connection: {} ({}, {} rounds, medians)",
                results.date, results.mode, results.rounds
            ),
            &("sans-serif", 22).into_font().color(&BLACK),
            (20, 15),
        )
        .map_err(plot_err)?;
    for (area, (id, key, caption)) in body.split_evenly((3, 3)).iter().zip(PANELS) {
        let Some(scenario) = results.scenario(id) else {
            continue;
        };
        let bars: Vec<Bar> = scenario
            .rows
            .iter()
            .map(|row| Bar {
                label: short_label(id, &row.contender),
                value: (row.status == Status::Measured)
                    .then(|| row.metrics.iter().find(|m| m.key == key).map(|m| m.median))
                    .flatten(),
            })
            .collect();
        panel(area, caption, &bars)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// One bar: `None` when the contender has no such measurement (not implemented).
struct Bar {
    label: String,
    value: Option<f64>,
}

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    caption: &str,
    bars: &[Bar],
) -> anyhow::Result<()> {
    let max = bars.iter().filter_map(|b| b.value).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        // A segmented 0..n has n + 1 segments: the last bar is at n - 1.
        .build_cartesian_2d((0..bars.len().saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_style(("sans-serif", 12))
        .y_label_style(("sans-serif", 11))
        .y_label_formatter(&|v| fmt_value(*v))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or_else(String::new, |b| b.label.clone()),
            _ => String::new(),
        })
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), bar.value.unwrap_or(0.0)),
                ],
                colour(&bar.label).filled(),
            );
            rect.set_margin(0, 0, 12, 12);
            rect
        }))
        .map_err(plot_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let text = bar
                .value
                .map_or_else(|| "not implemented".to_owned(), fmt_value);
            Text::new(
                text,
                (
                    SegmentValue::CenterOf(i),
                    bar.value.unwrap_or(0.0) + top * 0.03,
                ),
                TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(plot_err)?;
    Ok(())
}

/// Labels short enough to sit under a bar.
fn short_label(scenario: u32, contender: &str) -> String {
    let label = match contender {
        "flowproxy" if scenario == 8 => "attached",
        "flowproxy, programs detached" => "detached",
        "flowproxy, fast path (TC on veth)" => "flowproxy fast path",
        "flowproxy, user-space relay" => "flowproxy relay",
        "HAProxy TCP, splice-auto" => "HAProxy TCP",
        other => other.split(", ").next().unwrap_or(other),
    };
    label.to_owned()
}

fn colour(label: &str) -> RGBColor {
    if label.starts_with("HAProxy") {
        RGBColor(66, 110, 180)
    } else if label.starts_with("nginx") {
        RGBColor(70, 150, 90)
    } else if label.starts_with("Traefik") {
        RGBColor(150, 90, 170)
    } else if label.starts_with("Caddy") {
        RGBColor(60, 160, 170)
    } else if label.starts_with("direct") {
        RGBColor(140, 140, 140)
    } else {
        RGBColor(230, 130, 40)
    }
}

fn register_font() -> anyhow::Result<()> {
    let bytes = std::fs::read(FONT)
        .with_context(|| format!("reading the chart's font {FONT} (Debian: fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{FONT} is not a font plotters can read"))
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}
