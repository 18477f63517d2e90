//! `--plot FILE.svg`: live bytes (the trace's, black) and each contender's
//! resident memory (its first successful round) along the replay, on one
//! axis of operations done, so fragmentation shows as the gap between a
//! contender's curve and the black one. Drawn with plotters' SVG backend
//! (text is left to the viewer: no font libraries).

use super::report::Results;
use crate::bench::plot::colour;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

const MIB: f64 = (1u64 << 20) as f64;

pub fn write(r: &Results, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {}", path.display(), e);
    let curves: Vec<(usize, Vec<(f64, f64)>)> = r
        .contenders
        .iter()
        .enumerate()
        .filter_map(|(c, _)| {
            let run = r.runs.iter().find(|run| run.contender == c && run.ok() && !run.samples.is_empty())?;
            Some((c, run.samples.iter().map(|&(ops, kib)| (ops as f64, kib as f64 * 1024.0 / MIB)).collect()))
        })
        .collect();
    let live: Vec<(f64, f64)> = r.workload.live_curve.iter().map(|&(ops, bytes)| (ops as f64, bytes as f64 / MIB)).collect();
    let x_max = (r.workload.operations.max(1)) as f64;
    let y_max = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).chain(live.iter().map(|p| p.1)).fold(0.0, f64::max).max(0.1) * 1.1;

    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("alloc8 replay of {}: live bytes and resident memory", r.workload.program), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("operations replayed")
        .y_desc("MiB")
        .x_label_formatter(&|x| format!("{:.0}", x))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(live, BLACK.stroke_width(2))))
        .map_err(|e| err(&e))?
        .label("live bytes (the trace)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    for (c, points) in curves {
        let style = colour(c).stroke_width(2);
        chart
            .draw_series(std::iter::once(PathElement::new(points, style)))
            .map_err(|e| err(&e))?
            .label(format!("{}: resident", r.contenders[c].name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
