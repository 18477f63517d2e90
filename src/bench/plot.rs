//! `--plot FILE.svg`: two panels drawn with plotters' SVG backend. Above,
//! each contender's median time as a ratio to glibc's, one group of bars per
//! workload, on a log scale with bars rising from glibc's line at 1 (up:
//! slower, down: faster; the ratios span 0.02 to 40, which a linear axis
//! cannot show). Below, peak RSS in MiB, glibc included, also on a log scale.
//! The title carries the date, machine and rounds, so the chart stands alone.
//! plotters is built with the SVG backend alone: no font or image libraries
//! (text is left to the SVG viewer).

use super::results::Results;
use super::table::ratio_text;
use anyhow::{anyhow, Result};
use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Okabe and Ito's colour-blind safe palette; glibc is grey.
const COLOURS: &[RGBColor] = &[
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
];
const GLIBC_GREY: RGBColor = RGBColor(150, 150, 150);
const LABEL_CHARS: usize = 14;

/// A contender's colour (glibc, the baseline, is contender 0); `replay`'s plot uses it too.
pub(crate) fn colour(contender: usize) -> RGBColor {
    if contender == 0 {
        GLIBC_GREY
    } else {
        COLOURS[(contender - 1) % COLOURS.len()]
    }
}

pub fn write(r: &Results, path: &Path) -> Result<()> {
    let ran = r.ran();
    if ran.is_empty() {
        return Err(anyhow!("no workload ran: nothing to plot"));
    }
    let bars = r.contenders.len();
    let width = (160 + ran.len() * (bars * 26 + 30)).max(1000) as u32;
    let root = SVGBackend::new(path, (width, 940)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("cannot draw {}: {}", path.display(), e);
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(96);
    let rounds = if r.settings.rounds == 1 { "1 round (--quick)".to_string() } else { format!("median of {} rounds", r.settings.rounds) };
    head.draw(&Text::new(
        format!("alloc8 bench: {}, interleaved; {} threads in the threaded workloads", rounds, r.settings.threads),
        (14, 10),
        ("sans-serif", 24).into_font(),
    ))
    .map_err(err)?;
    head.draw(&Text::new(r.machine.note(), (14, 40), ("sans-serif", 16).into_font().color(&RGBColor(90, 90, 90)))).map_err(err)?;
    let mut x = 14;
    for (c, contender) in r.contenders.iter().enumerate() {
        head.draw(&Rectangle::new([(x, 68), (x + 14, 82)], colour(c).filled())).map_err(err)?;
        let label = if c == 0 { format!("{} (baseline)", contender.name) } else { contender.name.clone() };
        head.draw(&Text::new(label.clone(), (x + 20, 67), ("sans-serif", 18).into_font())).map_err(err)?;
        x += 40 + label.chars().count() as i32 * 9;
    }
    let (top, bottom) = body.split_vertically(480);
    time_panel(r, &ran, &top).map_err(|e| anyhow!("cannot draw {}: {}", path.display(), e))?;
    rss_panel(r, &ran, &bottom).map_err(|e| anyhow!("cannot draw {}: {}", path.display(), e))?;
    root.present().map_err(err)?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;
/// A panel: workload groups across (centred on 0, 1, ...), a log scale up.
type Grouped<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, WithKeyPoints<LogCoord<f64>>>>;

/// The frame both panels share: caption, axes, workload names, 1-2-5 labels ending in `unit`.
fn grouped_chart<'a, 'b>(
    area: &'a Area<'b>,
    r: &Results,
    ran: &[usize],
    caption: &str,
    (lo, hi): (f64, f64),
    y_desc: &str,
    unit: &str,
) -> std::result::Result<Grouped<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(ran.len() as f64 - 0.5), (lo..hi).log_scale().with_key_points(nice_points(lo, hi)))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ran.len())
        .x_label_formatter(&|x| group_label(r, ran, *x))
        .x_label_style(("sans-serif", 15))
        .y_label_style(("sans-serif", 14))
        .y_desc(y_desc)
        .y_label_formatter(&|y| format!("{}{}", axis_number(*y), unit))
        .draw()?;
    Ok(chart)
}

/// Group `i`, bar `j` of `n`: the bar's x extent, groups centred on integers.
fn slot(i: usize, j: usize, n: usize) -> (f64, f64) {
    let w = 0.8 / n as f64;
    let x0 = i as f64 - 0.4 + j as f64 * w;
    (x0 + w * 0.08, x0 + w * 0.92)
}

fn log_range(values: impl Iterator<Item = f64>, include: &[f64]) -> (f64, f64) {
    let (lo, hi) = values.chain(include.iter().copied()).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo / 1.6, hi * 1.6)
}

/// 1-2-5 steps within [lo, hi]: the axis labels of a log scale.
fn nice_points(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// 0.02, 0.5, 1, 20: no trailing zeros.
fn axis_number(v: f64) -> String {
    let text = format!("{:.3}", v);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn group_label(r: &Results, ran: &[usize], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= ran.len() {
        return String::new();
    }
    let name = &r.workloads[ran[i as usize]].name;
    if name.chars().count() > LABEL_CHARS {
        name.chars().take(LABEL_CHARS - 1).chain(std::iter::once('…')).collect()
    } else {
        name.clone()
    }
}

/// One bar of the time panel: group, ratio, and the whisker's ends (the
/// fastest and slowest rounds over glibc's median).
struct Bar {
    group: usize,
    ratio: f64,
    low: f64,
    high: f64,
    /// A spread too wide to trust (the table's `~`).
    wide: bool,
}

fn time_bars(r: &Results, ran: &[usize], c: usize) -> Vec<Bar> {
    ran.iter()
        .enumerate()
        .filter_map(|(group, &w)| {
            let cell = r.cell(w, c)?;
            let base = r.cell(w, 0)?.median_s?;
            Some(Bar { group, ratio: cell.ratio?, low: cell.fastest_s? / base, high: cell.slowest_s? / base, wide: cell.wide() })
        })
        .collect()
}

fn time_panel(r: &Results, ran: &[usize], area: &Area) -> Drawn {
    let n = r.contenders.len() - 1; // glibc is the line at 1
    let bars: Vec<Vec<Bar>> = (1..r.contenders.len()).map(|c| time_bars(r, ran, c)).collect();
    let (lo, hi) = log_range(bars.iter().flatten().flat_map(|b| [b.low, b.high]), &[0.5, 2.0]);
    let caption = "time relative to glibc's median (log scale: below the line is faster; whiskers: fastest to slowest round; \
                   grey band: glibc's own spread; ~ wide spread)";
    let mut chart = grouped_chart(area, r, ran, caption, (lo, hi), "time / glibc's time", "x")?;
    // glibc's own rounds, fastest to slowest over its median: a ratio inside the band is within the baseline's noise.
    chart.draw_series(ran.iter().enumerate().filter_map(|(i, &w)| {
        let base = r.cell(w, 0)?;
        let (median, fastest, slowest) = (base.median_s?, base.fastest_s?, base.slowest_s?);
        (slowest > fastest).then(|| {
            Rectangle::new([(i as f64 - 0.45, fastest / median), (i as f64 + 0.45, slowest / median)], GLIBC_GREY.mix(0.25).filled())
        })
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(vec![(-0.5, 1.0), (ran.len() as f64 - 0.5, 1.0)], GLIBC_GREY.stroke_width(2))))?;
    // The ratio is written beyond the whisker's end when it fits beside its neighbours.
    let labelled = area.dim_in_pixel().0 as f64 / ran.len() as f64 * 0.8 / n as f64 >= 30.0;
    for (j, bars) in bars.iter().enumerate() {
        let c = j + 1;
        let middle = |b: &Bar| {
            let (x0, x1) = slot(b.group, j, n);
            (x0 + x1) / 2.0
        };
        chart.draw_series(bars.iter().map(|b| {
            let (x0, x1) = slot(b.group, j, n);
            Rectangle::new([(x0, 1.0), (x1, b.ratio)], colour(c).filled())
        }))?;
        chart.draw_series(bars.iter().map(|b| PathElement::new(vec![(middle(b), b.low), (middle(b), b.high)], BLACK.mix(0.6))))?;
        if labelled {
            chart.draw_series(bars.iter().map(|b| {
                let (v, y) = label_place(b, j);
                let style = ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Center, v));
                Text::new(format!("{}{}", ratio_text(b.ratio), if b.wide { "~" } else { "" }), (middle(b), y), style)
            }))?;
        }
        chart.draw_series(failures(r, ran, c, n, 1.0))?;
    }
    Ok(())
}

/// Where bar `j`'s label goes: beyond the whisker's end, away from glibc's
/// line. Bars near 1.0 are short, so their labels would sit side by side on
/// the line and run into each other: those are set out at staggered heights.
fn label_place(b: &Bar, j: usize) -> (VPos, f64) {
    let near = 1.0 + 0.12 * (1 + j % 2) as f64;
    if b.ratio >= 1.0 {
        (VPos::Bottom, b.high.max(b.ratio).max(near))
    } else {
        (VPos::Top, b.low.min(b.ratio).min(1.0 / near))
    }
}

fn rss_panel(r: &Results, ran: &[usize], area: &Area) -> Drawn {
    let n = r.contenders.len();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let values = ran.iter().flat_map(|&w| (0..n).filter_map(move |c| r.cell(w, c).and_then(|cell| cell.peak_rss_kib)).map(mib));
    let (lo, hi) = log_range(values, &[]);
    let mut chart = grouped_chart(area, r, ran, "peak RSS in MiB (log scale)", (lo, hi), "MiB", "")?;
    for c in 0..n {
        let col = colour(c);
        let bars: Vec<_> = ran
            .iter()
            .enumerate()
            .filter_map(|(i, &w)| {
                let rss = mib(r.cell(w, c)?.peak_rss_kib?);
                let (x0, x1) = slot(i, c, n);
                Some(Rectangle::new([(x0, lo), (x1, rss)], col.filled()))
            })
            .collect();
        chart.draw_series(bars)?;
        chart.draw_series(failures(r, ran, c, n, lo * 1.15))?;
    }
    Ok(())
}

/// "failed: SIGABRT" (the status up to its details), written upwards in red
/// in the slot of each failed cell of contender `c` (bar `c` of `n` in the
/// panel; in the time panel, where glibc has no bar, bar `c - 1`).
fn failures(r: &Results, ran: &[usize], c: usize, n: usize, y: f64) -> Vec<Text<'static, (f64, f64), String>> {
    let bar = if n == r.contenders.len() { c } else { c - 1 };
    ran.iter()
        .enumerate()
        .filter_map(|(i, &w)| {
            let status = r.cell(w, c)?.failed.as_ref()?;
            let (x0, x1) = slot(i, bar, n);
            let text = format!("failed: {}", status.split(':').next().unwrap_or(status));
            let style =
                ("sans-serif", 15).into_font().color(&RED).transform(FontTransform::Rotate270).pos(Pos::new(HPos::Left, VPos::Center));
            Some(Text::new(text, ((x0 + x1) / 2.0, y), style))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_get_1_2_5_labels() {
        assert_eq!(nice_points(0.03, 60.0), [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(nice_points(0.6, 1.9), [1.0]);
        let labels: Vec<String> = nice_points(0.01, 1.0).into_iter().map(axis_number).collect();
        assert_eq!(labels, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
    }

    #[test]
    fn labels_near_one_are_staggered_and_away_from_the_line() {
        let bar = |ratio: f64| Bar { group: 0, ratio, low: ratio, high: ratio, wide: false };
        let (a, b) = (label_place(&bar(1.01), 0).1, label_place(&bar(1.02), 1).1);
        assert!(a >= 1.12 && b >= 1.24 && (b - a).abs() > 0.1, "{} {}", a, b);
        let (v, y) = label_place(&bar(0.99), 0);
        assert!(matches!(v, VPos::Top) && y <= 1.0 / 1.12);
        assert_eq!(label_place(&bar(3.0), 0).1, 3.0, "a long bar's label stays at its end");
    }

    #[test]
    fn bars_of_a_group_sit_side_by_side_around_its_centre() {
        let (a0, a1) = slot(3, 0, 2);
        let (b0, b1) = slot(3, 1, 2);
        assert!(a0 > 2.5 && a1 < b0 && b1 < 3.5, "{} {} {} {}", a0, a1, b0, b1);
        assert!(((a0 + b1) / 2.0 - 3.0).abs() < 1e-9);
    }
}
