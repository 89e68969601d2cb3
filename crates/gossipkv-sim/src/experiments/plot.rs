//! Plots of the experiments (SVG or PNG by the file's extension), drawn with `plotters` and
//! DejaVu Sans embedded in the binary, like the simulator's own plot.
//!
//! - [`plot_demers`]: the four columns of Table 1 against `k`, ours (mean ± std) and the
//!   paper's.
//! - [`plot_demers_spread`]: the mean share of sites that know the update per cycle, per `k`.
//! - [`plot_push_pull`]: rounds to reach every node against fanout, one panel per loss: the
//!   Monte-Carlo mean and p99, the mean-field theory, `log_{2k+1} n`, design.md's figures and
//!   gossipkv's real protocol.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::demers::{DemersReport, PaperRow};
use super::push_pull::PushPullReport;
use crate::plot::register_font;

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Something drawable on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn render(fig: &impl Figure, path: &Path, size: (u32, u32)) -> Result<(), String> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    match ext.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            fig.draw(&root).map_err(|e| fail(&e))?;
            root.present().map_err(|e| fail(&e))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            fig.draw(&root).map_err(|e| fail(&e))?;
            root.present().map_err(|e| fail(&e))
        }
        _ => Err(format!("{}: the file name must end in .svg or .png", path.display())),
    }
}

/// A palette of distinguishable colours, cycled.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
}

/// Writes the Table 1 figure of `r` to `path` (`.svg` or `.png`).
pub fn plot_demers(r: &DemersReport, path: &Path) -> Result<(), String> {
    render(&DemersFigure(r), path, (1100, 820))
}

/// Writes the spread-per-cycle figure of `r` to `path` (`.svg` or `.png`).
pub fn plot_demers_spread(r: &DemersReport, path: &Path) -> Result<(), String> {
    render(&SpreadFigure(r), path, (1000, 600))
}

/// Writes the rounds-against-fanout figure of `r` to `path` (`.svg` or `.png`).
pub fn plot_push_pull(r: &PushPullReport, path: &Path) -> Result<(), String> {
    let panels = r.config.losses.len().max(1) as u32;
    render(&PushPullFigure(r), path, (480 * panels + 40, 620))
}

struct DemersFigure<'a>(&'a DemersReport);

impl Figure for DemersFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let r = self.0;
        root.fill(&WHITE)?;
        let title = format!(
            "Demers et al. 1987, Table 1 (push, feedback, counter), n = {}: ours ({} trials per k, \
             mean ± std) vs the paper",
            r.config.nodes, r.config.trials
        );
        let root = root.titled(&title, ("sans-serif", 19))?;
        let panels = root.split_evenly((2, 2));
        let kmax = r.rows.iter().map(|row| row.k).max().unwrap_or(1) as f64;
        let xr = 0.5..kmax + 0.5;
        type Col = (
            &'static str,
            fn(&super::demers::DemersRow) -> &super::stats::Summary,
            fn(&PaperRow) -> f64,
        );
        let cols: [Col; 4] = [
            ("residue s (share of sites never reached; log scale)", |x| &x.residue, |p| p.residue),
            ("traffic m (messages per site)", |x| &x.traffic, |p| p.traffic),
            ("t_ave (mean cycle of first reception)", |x| &x.t_ave, |p| p.t_ave),
            ("t_last (cycle of the last first reception)", |x| &x.t_last, |p| p.t_last),
        ];
        for (i, (area, (caption, ours, paper))) in panels.iter().zip(cols).enumerate() {
            let pts: Vec<(f64, f64, f64)> = r
                .rows
                .iter()
                .map(|row| (f64::from(row.k), ours(row).mean, ours(row).std))
                .collect();
            let paper_pts: Vec<(f64, f64)> = r
                .rows
                .iter()
                .filter_map(|row| row.paper.map(|p| (f64::from(row.k), paper(&p))))
                .collect();
            let values = pts
                .iter()
                .flat_map(|&(_, m, s)| [m - s, m + s])
                .chain(paper_pts.iter().map(|p| p.1));
            if i == 0 {
                let positive = pts
                    .iter()
                    .map(|p| p.1)
                    .chain(paper_pts.iter().map(|p| p.1))
                    .filter(|v| *v > 0.0);
                let lo = positive.clone().fold(f64::INFINITY, f64::min);
                let hi = values.fold(0.0f64, f64::max);
                let (lo, hi) = if lo.is_finite() { (lo / 3.0, hi * 2.0) } else { (1e-4, 1.0) };
                let mut chart = ChartBuilder::on(area)
                    .margin(14)
                    .caption(caption, ("sans-serif", 15))
                    .x_label_area_size(34)
                    .y_label_area_size(64)
                    .build_cartesian_2d(xr.clone(), (lo..hi).log_scale())?;
                chart
                    .configure_mesh()
                    .x_desc("counter k")
                    .x_labels(kmax as usize)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| format!("{y:.0e}"))
                    .label_style(("sans-serif", 12))
                    .draw()?;
                draw_ours_and_paper(&mut chart, &pts, &paper_pts, lo, i == 0)?;
            } else {
                let (lo, hi) = values
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
                let pad = ((hi - lo) * 0.1).max(0.2);
                let lo = (lo - pad).max(0.0);
                let mut chart = ChartBuilder::on(area)
                    .margin(14)
                    .caption(caption, ("sans-serif", 15))
                    .x_label_area_size(34)
                    .y_label_area_size(64)
                    .build_cartesian_2d(xr.clone(), lo..hi + pad)?;
                chart
                    .configure_mesh()
                    .x_desc("counter k")
                    .x_labels(kmax as usize)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .label_style(("sans-serif", 12))
                    .draw()?;
                draw_ours_and_paper(&mut chart, &pts, &paper_pts, lo, false)?;
            }
        }
        Ok(())
    }
}

/// Ours as a line with ±std bars, the paper's as red diamonds.
fn draw_ours_and_paper<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    ours: &[(f64, f64, f64)],
    paper: &[(f64, f64)],
    floor: f64,
    legend: bool,
) -> DrawResult<DB>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let blue = colour(0);
    let red = colour(3);
    let line = chart
        .draw_series(LineSeries::new(ours.iter().map(|p| (p.0, p.1)), blue.stroke_width(2)))?;
    if legend {
        line.label("ours: mean ± std over trials").legend(legend_line(blue));
    }
    chart.draw_series(ours.iter().map(|p| Circle::new((p.0, p.1), 4, blue.filled())))?;
    chart.draw_series(ours.iter().map(|&(x, m, s)| {
        PathElement::new(vec![(x, (m - s).max(floor)), (x, m + s)], blue.stroke_width(1))
    }))?;
    let marks = chart.draw_series(paper.iter().map(|&(x, y)| {
        EmptyElement::at((x + 0.08, y))
            + Polygon::new(vec![(0, -6), (6, 0), (0, 6), (-6, 0)], red.mix(0.85).filled())
    }))?;
    if legend {
        marks.label("Demers et al. 1987, Table 1").legend(move |(x, y)| {
            Polygon::new(
                vec![(x + 9, y - 6), (x + 15, y), (x + 9, y + 6), (x + 3, y)],
                red.filled(),
            )
        });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    Ok(())
}

struct SpreadFigure<'a>(&'a DemersReport);

impl Figure for SpreadFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let r = self.0;
        root.fill(&WHITE)?;
        // up to three cycles after every curve is within 0.1% of where it ends
        let settled = |v: &[f64]| {
            let end = v.last().copied().unwrap_or(0.0);
            let at = v.iter().position(|x| (end - x).abs() < 1e-3).unwrap_or(v.len());
            (at + 3).min(v.len())
        };
        let cycles =
            r.rows.iter().map(|row| settled(&row.knowing_share_by_cycle)).max().unwrap_or(2).max(2);
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .caption(
                format!(
                    "Push rumor mongering (feedback, counter), n = {}: mean share of sites that know \
                     the update ({} trials per k)",
                    r.config.nodes, r.config.trials
                ),
                ("sans-serif", 17),
            )
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..(cycles - 1) as f64, 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc("cycle")
            .y_desc("share of sites that know the update")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 13))
            .draw()?;
        for (i, row) in r.rows.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(
                    row.knowing_share_by_cycle
                        .iter()
                        .take(cycles)
                        .enumerate()
                        .map(|(t, v)| (t as f64, *v)),
                    c.stroke_width(2),
                ))?
                .label(format!("k = {}: residue {:.2}%", row.k, row.residue.mean * 100.0))
                .legend(legend_line(c));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()?;
        Ok(())
    }
}

struct PushPullFigure<'a>(&'a PushPullReport);

impl Figure for PushPullFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let r = self.0;
        root.fill(&WHITE)?;
        let title = format!(
            "Push-pull anti-entropy, one update, n = {}: rounds until every node has it ({} trials \
             per point)",
            r.config.nodes, r.config.trials
        );
        let root = root.titled(&title, ("sans-serif", 19))?;
        let losses = &r.config.losses;
        let panels = root.split_evenly((1, losses.len().max(1)));
        let kmax = r.config.fanouts.iter().copied().max().unwrap_or(1) as f64;
        for (area, &loss) in panels.iter().zip(losses) {
            let cells: Vec<_> = r.cells.iter().filter(|c| c.loss == loss).collect();
            let proto: Vec<_> =
                r.protocol.iter().filter(|p| p.loss == loss && p.rounds.n > 0).collect();
            let ymax = cells
                .iter()
                .map(|c| c.rounds.p99.max(c.theory.mean_field_mean))
                .chain(proto.iter().map(|p| p.rounds.max))
                .fold(1.0f64, f64::max)
                * 1.1
                + 1.0;
            let mut chart = ChartBuilder::on(area)
                .margin(14)
                .caption(format!("loss {}%", (loss * 1000.0).round() / 10.0), ("sans-serif", 16))
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(0.5..kmax + 0.5, 0f64..ymax)?;
            chart
                .configure_mesh()
                .x_desc("fanout k")
                .y_desc("rounds")
                .x_labels(kmax as usize)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style(("sans-serif", 12))
                .draw()?;
            let (blue, orange, green, red, grey) =
                (colour(0), colour(1), colour(2), colour(3), colour(7));
            let x = |k: usize| k as f64;
            chart
                .draw_series(LineSeries::new(
                    cells.iter().map(|c| (x(c.k), c.rounds.mean)),
                    blue.stroke_width(2),
                ))?
                .label("model: mean")
                .legend(legend_line(blue));
            chart.draw_series(
                cells.iter().map(|c| Circle::new((x(c.k), c.rounds.mean), 3, blue.filled())),
            )?;
            chart
                .draw_series(cells.iter().map(|c| {
                    EmptyElement::at((x(c.k), c.rounds.p99))
                        + Polygon::new(vec![(0, -5), (5, 4), (-5, 4)], blue.mix(0.5).filled())
                }))?
                .label("model: p99")
                .legend(move |(x, y)| {
                    Polygon::new(
                        vec![(x + 9, y - 5), (x + 14, y + 4), (x + 4, y + 4)],
                        blue.mix(0.5).filled(),
                    )
                });
            chart
                .draw_series(DashedLineSeries::new(
                    cells.iter().map(|c| (x(c.k), c.theory.mean_field_mean)),
                    6,
                    4,
                    orange.stroke_width(2),
                ))?
                .label("mean-field theory: mean")
                .legend(legend_line(orange));
            chart
                .draw_series(DashedLineSeries::new(
                    cells.iter().map(|c| (x(c.k), c.theory.log_2k1_n)),
                    2,
                    4,
                    grey.stroke_width(2),
                ))?
                .label("log_(2k+1) n")
                .legend(legend_line(grey));
            let design: Vec<_> =
                cells.iter().filter_map(|c| c.design.map(|d| (x(c.k), d.0))).collect();
            if !design.is_empty() {
                chart
                    .draw_series(
                        design.iter().map(|&(k, m)| Cross::new((k, m), 6, red.stroke_width(2))),
                    )?
                    .label("design.md §4 mean")
                    .legend(move |(x, y)| Cross::new((x + 9, y), 5, red.stroke_width(2)));
            }
            let proto: Vec<_> =
                r.protocol.iter().filter(|p| p.loss == loss && p.rounds.n > 0).collect();
            if !proto.is_empty() {
                chart.draw_series(proto.iter().map(|p| {
                    PathElement::new(
                        vec![(x(p.k) + 0.12, p.rounds.min), (x(p.k) + 0.12, p.rounds.max)],
                        green.stroke_width(2),
                    )
                }))?;
                chart
                    .draw_series(proto.iter().map(|p| {
                        Rectangle::new(
                            [
                                (x(p.k) + 0.04, p.rounds.mean - 0.06),
                                (x(p.k) + 0.2, p.rounds.mean + 0.06),
                            ],
                            green.filled(),
                        )
                    }))?
                    .label("gossipkv protocol (sim): mean, min-max")
                    .legend(move |(x, y)| {
                        Rectangle::new([(x + 4, y - 4), (x + 14, y + 4)], green.filled())
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
        Ok(())
    }
}
