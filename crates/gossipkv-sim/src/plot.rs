//! `--plot FILE`: convergence over rounds (share of nodes equal to the oracle, share of stale
//! `(node, key)` pairs) and bytes per round, as SVG or PNG (by the file's extension).
//!
//! Text is rendered with DejaVu Sans embedded in the binary (the `dejavu` crate, through
//! plotters' `ab_glyph` feature), so PNGs have labels on machines without system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{Report, name};

/// Registers the bundled DejaVu Sans as plotters' "sans-serif" (once per process): every
/// figure of the simulator and the experiments draws its text with it.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; registration cannot fail on it.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Writes the plot of `report` to `path` (`.svg` or `.png`).
pub fn plot(report: &Report, path: &Path) -> Result<(), String> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let size = (1000, 760);
    match ext.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(report, &root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(report, &root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        }
        _ => Err(format!("--plot {}: the file name must end in .svg or .png", path.display())),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(r: &Report, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let title = format!(
        "gossipkv sim: {} nodes, k={}, {:.0}% loss, {} keys, protocol {}, scenario {}, seed {}",
        r.nodes,
        r.fanout,
        r.loss * 100.0,
        r.keys,
        name(&r.protocol),
        name(&r.scenario),
        r.seed
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(430);
    let s = &r.series;
    let rounds = s.nodes_converged.len().max(2) as f64 - 1.0;
    let settle = f64::from(r.settle_round);

    let mut top_chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .caption("convergence", ("sans-serif", 16))
        .build_cartesian_2d(0f64..rounds, 0f64..1.02f64)?;
    top_chart
        .configure_mesh()
        .x_desc("round")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("share")
        .label_style(("sans-serif", 13))
        .draw()?;
    let nodes = r.nodes.max(1) as f64;
    top_chart
        .draw_series(LineSeries::new(
            s.nodes_converged.iter().enumerate().map(|(i, c)| (i as f64, f64::from(*c) / nodes)),
            BLUE.stroke_width(2),
        ))?
        .label("nodes equal to the oracle")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    let stale_label = if s.stale_exact {
        "stale (node, key) pairs".to_string()
    } else {
        format!("stale (node, key) pairs (sample of {} keys)", s.stale_sample_keys)
    };
    top_chart
        .draw_series(LineSeries::new(
            s.stale_key_share.iter().enumerate().map(|(i, v)| (i as f64, *v)),
            RED.stroke_width(2),
        ))?
        .label(stale_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    top_chart
        .draw_series(LineSeries::new(vec![(settle, 0.0), (settle, 1.02)], BLACK.mix(0.4)))?
        .label("settle point (last write / end of faults)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
    top_chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()?;

    let max_bytes = s.bytes.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (scale, unit) = if max_bytes >= 1e9 {
        (1e9, "GB")
    } else if max_bytes >= 1e6 {
        (1e6, "MB")
    } else if max_bytes >= 1e3 {
        (1e3, "KB")
    } else {
        (1.0, "B")
    };
    let mut bottom_chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .caption("bytes sent per round (all nodes, dropped messages included)", ("sans-serif", 16))
        .build_cartesian_2d(0f64..rounds, 0f64..(max_bytes / scale) * 1.05)?;
    bottom_chart
        .configure_mesh()
        .x_desc("round")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(unit)
        .label_style(("sans-serif", 13))
        .draw()?;
    bottom_chart.draw_series(LineSeries::new(
        s.bytes.iter().enumerate().map(|(i, b)| (i as f64, *b as f64 / scale)),
        GREEN.stroke_width(2),
    ))?;
    bottom_chart.draw_series(LineSeries::new(
        vec![(settle, 0.0), (settle, (max_bytes / scale) * 1.05)],
        BLACK.mix(0.4),
    ))?;
    Ok(())
}
