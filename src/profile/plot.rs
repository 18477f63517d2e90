//! `--plot`: the size histogram, the lifetime distribution, and live bytes
//! against RSS over time (the gap between the two curves is the heap's
//! overhead and fragmentation), with plotters' SVG backend.

use super::classes;
use super::report::Report;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

const BLUE: RGBColor = RGBColor(0, 114, 178);
const ORANGE: RGBColor = RGBColor(230, 159, 0);

/// All three panels in one SVG, one above the other.
pub fn one_file(r: &Report, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1000, 1200)).into_drawing_area();
    let err = |e: Box<dyn std::error::Error>| anyhow!("cannot draw {}: {}", path.display(), e);
    root.fill(&WHITE).map_err(|e| err(e.into()))?;
    let panels = root.split_evenly((3, 1));
    sizes(r, &panels[0]).map_err(err)?;
    lifetimes(r, &panels[1]).map_err(err)?;
    memory(r, &panels[2]).map_err(err)?;
    root.present().map_err(|e| err(e.into()))?;
    Ok(())
}

/// Three SVGs in `dir`: `<stem>-sizes.svg`, `-lifetimes.svg`, `-memory.svg`.
pub fn into_dir(r: &Report, dir: &Path, stem: &str) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("cannot create {}: {}", dir.display(), e))?;
    let mut written = Vec::new();
    let panels: [(&str, fn(&Report, &Area) -> Drawn); 3] = [("sizes", sizes), ("lifetimes", lifetimes), ("memory", memory)];
    for (name, draw) in panels {
        let path = dir.join(format!("{}-{}.svg", stem, name));
        {
            let root = SVGBackend::new(&path, (1000, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow!("cannot draw {}: {}", path.display(), e))?;
            draw(r, &root).map_err(|e| anyhow!("cannot draw {}: {}", path.display(), e))?;
            root.present().map_err(|e| anyhow!("cannot draw {}: {}", path.display(), e))?;
        }
        written.push(path);
    }
    Ok(written)
}

fn bars(area: &Area, caption: &str, x_desc: &str, labels: &[String], values: &[f64]) -> Drawn {
    let max = values.iter().cloned().fold(0.0, f64::max).max(1.0);
    let n = values.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..max * 1.05)?;
    let step = (n / 16).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_desc)
        .x_labels(n.min(40))
        .x_label_formatter(&|x| {
            let i = *x as usize;
            if i < labels.len() && i % step == 0 && (*x - i as f64).abs() < 1e-9 {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .draw()?;
    chart.draw_series(
        values.iter().enumerate().map(|(i, &v)| Rectangle::new([(i as f64 + 0.1, 0.0), (i as f64 + 0.9, v)], BLUE.filled())),
    )?;
    Ok(())
}

fn sizes(r: &Report, area: &Area) -> Drawn {
    let labels: Vec<String> = r.sizes.iter().map(|s| classes::name(s.class)).collect();
    let values: Vec<f64> = r.sizes.iter().map(|s| s.calls as f64).collect();
    bars(area, &format!("{}: allocations by size class", short(&r.program)), "size class (bytes, up to)", &labels, &values)
}

fn lifetimes(r: &Report, area: &Area) -> Drawn {
    let last = r.lifetime_log2_ns.iter().rposition(|&n| n > 0).unwrap_or(0);
    let first = r.lifetime_log2_ns.iter().position(|&n| n > 0).unwrap_or(0);
    let labels: Vec<String> = (first..=last)
        .map(|i| {
            let ns = if i == 0 { 0.0 } else { (1u64 << (i - 1)) as f64 };
            match ns {
                n if n >= 1e9 => format!("{:.0}s", n / 1e9),
                n if n >= 1e6 => format!("{:.0}ms", n / 1e6),
                n if n >= 1e3 => format!("{:.0}us", n / 1e3),
                n => format!("{:.0}ns", n),
            }
        })
        .collect();
    let values: Vec<f64> = r.lifetime_log2_ns[first..=last].iter().map(|&n| n as f64).collect();
    bars(area, "lifetimes of freed blocks (log2 buckets)", "lifetime, at least", &labels, &values)
}

fn memory(r: &Report, area: &Area) -> Drawn {
    let end = r.duration_s.max(1e-6);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let max = r.live_series.iter().map(|p| mib(p.1)).chain(r.rss_series.iter().map(|p| mib(p.1))).fold(0.0, f64::max).max(0.01);
    let mut chart = ChartBuilder::on(area)
        .caption("live bytes and RSS over time (MiB)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end, 0.0..max * 1.05)?;
    chart.configure_mesh().x_desc("seconds").y_desc("MiB").draw()?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            r.live_series.iter().map(|&(t, b)| (t, mib(b))).collect::<Vec<_>>(),
            BLUE.stroke_width(2),
        )))?
        .label("live (requested bytes)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !r.rss_series.is_empty() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                r.rss_series.iter().map(|&(t, b)| (t, mib(b))).collect::<Vec<_>>(),
                ORANGE.stroke_width(2),
            )))?
            .label("RSS")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    Ok(())
}

fn short(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}
