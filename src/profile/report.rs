//! What `profile` says about one trace: built from the analysis, printed
//! as text or JSON.

use super::analysis::{Profile, GROWTH_BUCKETS};
use super::classes;
use super::sites::{self, Maps};
use crate::trace::{format, Reader};
use serde::Serialize;
use std::fmt::Write;

#[derive(Serialize)]
pub struct SizeRow {
    /// The class's largest size.
    pub class: u64,
    pub calls: u64,
    pub calls_share: f64,
    pub bytes: u64,
    pub bytes_share: f64,
    pub freed: u64,
    /// Mean lifetime of the freed blocks.
    pub mean_life_us: f64,
    pub mean_life_allocations: f64,
    pub median_life_us: f64,
}

#[derive(Serialize)]
pub struct SiteRow {
    pub frames: Vec<String>,
    pub samples: u64,
    pub est_bytes: u64,
    pub est_calls: u64,
    pub leaked_est_bytes: u64,
}

#[derive(Serialize)]
pub struct ThreadRow {
    pub index: u32,
    pub tid: u32,
    pub calls: u64,
    pub first_s: f64,
    pub last_s: f64,
    pub ended: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub trace: String,
    pub program: String,
    pub pid: u32,
    pub ppid: u32,
    pub forked: bool,
    /// Why the trace is not whole, if it is not (read with --partial, no exit seen...).
    pub notes: Vec<String>,
    pub duration_s: f64,
    pub calls: u64,
    pub calls_by_function: Vec<(String, u64)>,
    pub failed_allocations: u64,
    pub sizes: Vec<SizeRow>,
    pub realloc: serde_json::Value,
    pub alignments: Vec<(u64, u64)>,
    pub frees: u64,
    pub remote_frees: u64,
    /// (allocating thread, freeing thread, frees).
    pub remote_pairs: Vec<(u32, u32, u64)>,
    /// Calls the reader put after another thread's slightly later-stamped
    /// call they depend on (docs/trace.md, "Order without a shared counter").
    pub reordered: u64,
    pub peak_live_bytes: u64,
    pub peak_live_s: f64,
    /// The classes holding most bytes at the peak.
    pub at_peak: Vec<(u64, u64)>,
    pub peak_rss_bytes: u64,
    pub peak_rss_s: f64,
    pub live_series: Vec<(f64, u64)>,
    pub rss_series: Vec<(f64, u64)>,
    pub stack_every: u64,
    pub sites_by_bytes: Vec<SiteRow>,
    pub sites_by_calls: Vec<SiteRow>,
    pub leaked_blocks: u64,
    pub leaked_bytes: u64,
    pub leaks_by_site: Vec<SiteRow>,
    pub threads: Vec<ThreadRow>,
    /// Lifetimes of all freed blocks by power of two of nanoseconds.
    pub lifetime_log2_ns: Vec<u64>,
    pub reading: Vec<String>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The median of a log2 histogram, as the middle of its bucket.
fn median_log2(h: &[u64; 64]) -> f64 {
    let total: u64 = h.iter().sum();
    let mut seen = 0;
    for (i, &n) in h.iter().enumerate() {
        seen += n;
        if total > 0 && seen * 2 >= total {
            return if i == 0 { 0.0 } else { 1.5 * (1u64 << (i - 1)) as f64 };
        }
    }
    0.0
}

const TOP: usize = 10;

pub fn build(path: &str, reader: &Reader, p: &mut Profile, notes: Vec<String>) -> Report {
    let (leaked_blocks, leaked_bytes) = p.finish(reader);
    let calls = p.calls();
    let allocs: u64 = p.classes.iter().map(|c| c.calls).sum();
    let bytes: u64 = p.classes.iter().map(|c| c.bytes).sum();
    let sizes: Vec<SizeRow> = p
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.calls > 0)
        .map(|(i, c)| SizeRow {
            class: classes::limit(i),
            calls: c.calls,
            calls_share: share(c.calls, allocs),
            bytes: c.bytes,
            bytes_share: share(c.bytes, bytes),
            freed: c.freed,
            mean_life_us: if c.freed > 0 { c.life_ns as f64 / c.freed as f64 / 1e3 } else { 0.0 },
            mean_life_allocations: if c.freed > 0 { c.life_allocs as f64 / c.freed as f64 } else { 0.0 },
            median_life_us: median_log2(&c.life_log2) / 1e3,
        })
        .collect();
    let mut lifetime_log2_ns = vec![0u64; 64];
    for c in &p.classes {
        for (i, n) in c.life_log2.iter().enumerate() {
            lifetime_log2_ns[i] += n;
        }
    }
    let reallocs = p.calls_by_op[format::op::REALLOC as usize] + p.calls_by_op[format::op::REALLOCARRAY as usize];
    let realloc = serde_json::json!({
        "calls": reallocs,
        "from_null": p.realloc_from_null,
        "grow": p.realloc_grow,
        "shrink": p.realloc_shrink,
        "same": p.realloc_same,
        "moved": p.realloc_moved,
        "growth": GROWTH_BUCKETS.iter().zip(p.growth.iter()).map(|(l, n)| (l.to_string(), *n)).collect::<Vec<_>>(),
    });
    let remote_frees: u64 = p.remote.values().sum();
    let mut remote_pairs: Vec<(u32, u32, u64)> = p.remote.iter().map(|(&(a, b), &n)| (a, b, n)).collect();
    remote_pairs.sort_by_key(|r| std::cmp::Reverse(r.2));
    remote_pairs.truncate(TOP);
    let mut at_peak: Vec<(u64, u64)> =
        p.peak_classes.iter().enumerate().filter(|(_, &b)| b > 0).map(|(i, &b)| (classes::limit(i), b)).collect();
    at_peak.sort_by_key(|r| std::cmp::Reverse(r.1));
    at_peak.truncate(5);

    // Sites: the top ones by estimated bytes, calls and leaks, named together.
    let maps = Maps::new(reader.maps());
    let mut ids: Vec<u32> = p.sites.keys().copied().collect();
    let pick = |key: &dyn Fn(&super::analysis::Site) -> f64, ids: &mut Vec<u32>| -> Vec<u32> {
        ids.sort_by(|a, b| key(&p.sites[b]).total_cmp(&key(&p.sites[a])).then(a.cmp(b)));
        ids.iter().copied().filter(|id| key(&p.sites[id]) > 0.0).take(TOP).collect()
    };
    let by_bytes = pick(&|s| s.est_bytes, &mut ids);
    let by_calls = pick(&|s| s.est_calls, &mut ids);
    let by_leak = pick(&|s| s.leaked_est_bytes, &mut ids);
    let mut places: Vec<(String, u64)> = Vec::new();
    let mut frames_of: std::collections::HashMap<u32, Vec<Result<usize, u64>>> = Default::default();
    for &id in by_bytes.iter().chain(&by_calls).chain(&by_leak) {
        if frames_of.contains_key(&id) {
            continue;
        }
        let frames = sites::program_frames(&maps, reader.stack(id), 3)
            .into_iter()
            .map(|(place, ip)| match place {
                Some((obj, off)) => {
                    places.push((obj.to_string(), off));
                    Ok(places.len() - 1)
                }
                None => Err(ip),
            })
            .collect();
        frames_of.insert(id, frames);
    }
    let names = sites::name_all(&places);
    let row = |id: &u32| {
        let s = &p.sites[id];
        SiteRow {
            frames: frames_of[id]
                .iter()
                .map(|f| match f {
                    Ok(i) => names[*i].clone(),
                    Err(ip) => format!("0x{:x}", ip),
                })
                .collect(),
            samples: s.samples,
            est_bytes: s.est_bytes as u64,
            est_calls: s.est_calls as u64,
            leaked_est_bytes: s.leaked_est_bytes as u64,
        }
    };
    let sites_by_bytes: Vec<SiteRow> = by_bytes.iter().map(row).collect();
    let sites_by_calls: Vec<SiteRow> = by_calls.iter().map(row).collect();
    let leaks_by_site: Vec<SiteRow> = by_leak.iter().map(row).collect();

    let threads: Vec<ThreadRow> = reader
        .threads()
        .iter()
        .enumerate()
        .map(|(i, t)| ThreadRow {
            index: i as u32,
            tid: t.tid,
            calls: t.calls,
            first_s: secs(t.first_ns),
            last_s: secs(t.last_ns),
            ended: t.ended,
        })
        .collect();
    let calls_by_function = p
        .calls_by_op
        .iter()
        .enumerate()
        .filter(|&(op, &n)| n > 0 && op != format::op::RSS as usize)
        .map(|(op, &n)| (format::spec(op as u8).map_or("?", |s| s.name).to_string(), n))
        .collect();

    let mut r = Report {
        trace: path.to_string(),
        program: reader.process().program.clone(),
        pid: reader.process().pid,
        ppid: reader.process().ppid,
        forked: reader.process().forked,
        notes,
        duration_s: secs(p.duration_ns),
        calls,
        calls_by_function,
        failed_allocations: p.failed,
        sizes,
        realloc,
        alignments: p.alignments.iter().map(|(&a, &n)| (a, n)).collect(),
        frees: p.frees,
        remote_frees,
        remote_pairs,
        reordered: reader.summary().reordered,
        peak_live_bytes: p.peak_live,
        peak_live_s: secs(p.peak_live_ns),
        at_peak,
        peak_rss_bytes: p.peak_rss,
        peak_rss_s: secs(p.peak_rss_ns),
        live_series: p.live.points.iter().map(|&(t, b)| (secs(t), b)).collect(),
        rss_series: p.rss.points.iter().map(|&(t, b)| (secs(t), b)).collect(),
        stack_every: p.stack_every,
        sites_by_bytes,
        sites_by_calls,
        leaked_blocks,
        leaked_bytes,
        leaks_by_site,
        threads,
        lifetime_log2_ns,
        reading: Vec::new(),
    };
    r.reading = reading(&r);
    r
}

pub fn mb(bytes: u64) -> String {
    crate::record::human_bytes(bytes)
}

/// A few sentences a heap author can act on.
fn reading(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let allocs: u64 = r.sizes.iter().map(|s| s.calls).sum();
    if allocs == 0 {
        out.push("The program made no allocation.".into());
        return out;
    }
    let small: u64 = r.sizes.iter().filter(|s| s.class <= 64).map(|s| s.calls).sum();
    let top = r.sizes.iter().max_by_key(|s| s.calls).unwrap();
    out.push(format!(
        "{} calls in {:.2} s; {:.0}% of allocations are <= 64 bytes; the busiest class is {} bytes ({:.0}% of allocations).",
        r.calls,
        r.duration_s,
        100.0 * share(small, allocs),
        top.class,
        100.0 * top.calls_share
    ));
    if r.frees > 0 {
        let mut h = [0u64; 64];
        h.copy_from_slice(&r.lifetime_log2_ns);
        out.push(format!(
            "{:.0}% of frees are remote (another thread than the allocating one); half the blocks live under {}.",
            100.0 * share(r.remote_frees, r.frees),
            duration_text(median_log2(&h))
        ));
    }
    let mut peak = format!("Live peak {} at {:.2} s", mb(r.peak_live_bytes), r.peak_live_s);
    if r.peak_rss_bytes > 0 {
        let _ = write!(
            peak,
            ", RSS peak {} at {:.2} s ({:.1}x the live peak: the gap is the heap's overhead and fragmentation, plus the program's own non-heap memory)",
            mb(r.peak_rss_bytes),
            r.peak_rss_s,
            r.peak_rss_bytes as f64 / r.peak_live_bytes.max(1) as f64
        );
    }
    peak.push('.');
    out.push(peak);
    if r.leaked_blocks > 0 {
        out.push(format!("{} blocks ({}) were still live at exit.", r.leaked_blocks, mb(r.leaked_bytes)));
    }
    out
}

fn duration_text(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.1} s", n / 1e9),
        n if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} us", n / 1e3),
        n => format!("{:.0} ns", n),
    }
}

pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "== {} (pid {}{}): {}", r.program, r.pid, if r.forked { ", forked" } else { "" }, r.trace);
    for n in &r.notes {
        let _ = writeln!(o, "note: {}", n);
    }
    for line in &r.reading {
        let _ = writeln!(o, "{}", line);
    }
    let _ = writeln!(o, "\nsize class     calls  share       bytes  share   freed  mean life (us)  allocs between");
    for s in &r.sizes {
        let _ = writeln!(
            o,
            "{:>10} {:>9} {:>5.1}% {:>11} {:>5.1}% {:>7} {:>15.1} {:>15.0}",
            classes::name(s.class),
            s.calls,
            100.0 * s.calls_share,
            s.bytes,
            100.0 * s.bytes_share,
            s.freed,
            s.mean_life_us,
            s.mean_life_allocations
        );
    }
    let rc = r.realloc["calls"].as_u64().unwrap_or(0);
    if rc > 0 {
        let _ = writeln!(
            o,
            "\nrealloc: {} calls ({} from NULL): {} grow, {} shrink, {} same size; {} moved the block",
            rc, r.realloc["from_null"], r.realloc["grow"], r.realloc["shrink"], r.realloc["same"], r.realloc["moved"]
        );
        if let Some(g) = r.realloc["growth"].as_array() {
            let parts: Vec<String> = g.iter().map(|p| format!("{} {}", p[0].as_str().unwrap_or(""), p[1])).collect();
            let _ = writeln!(o, "  growth: {}", parts.join(", "));
        }
    }
    if !r.alignments.is_empty() {
        let parts: Vec<String> = r.alignments.iter().map(|(a, n)| format!("{}: {}", a, n)).collect();
        let _ = writeln!(o, "\naligned requests by alignment: {}", parts.join(", "));
    }
    let _ = writeln!(o, "\nfrees: {}, remote: {} ({:.1}%)", r.frees, r.remote_frees, 100.0 * share(r.remote_frees, r.frees));
    for (a, b, n) in &r.remote_pairs {
        let _ = writeln!(o, "  allocated on thread {} freed on thread {}: {}", a, b, n);
    }
    let _ = writeln!(o, "\nlive peak {} at {:.2} s; what was live then, by class:", mb(r.peak_live_bytes), r.peak_live_s);
    for (class, bytes) in &r.at_peak {
        let _ = writeln!(o, "  {:>8}-byte class: {}", classes::name(*class), mb(*bytes));
    }
    if r.peak_rss_bytes > 0 {
        let _ = writeln!(o, "RSS peak {} at {:.2} s ({} samples)", mb(r.peak_rss_bytes), r.peak_rss_s, r.rss_series.len());
    }
    let sites = |o: &mut String, title: &str, rows: &[SiteRow], value: &dyn Fn(&SiteRow) -> String| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n{}", title);
        for s in rows {
            let _ = writeln!(o, "  {:>12}  {}", value(s), s.frames.first().map_or("?", |f| f.as_str()));
            for f in s.frames.iter().skip(1) {
                let _ = writeln!(o, "  {:>12}    from {}", "", f);
            }
        }
    };
    if r.stack_every > 0 {
        sites(
            &mut o,
            &format!("top sites by bytes (estimated from one stack per {} allocated)", mb(r.stack_every)),
            &r.sites_by_bytes,
            &|s| mb(s.est_bytes),
        );
        sites(&mut o, "top sites by calls (estimated)", &r.sites_by_calls, &|s| format!("{} calls", s.est_calls));
    } else {
        let _ = writeln!(o, "\nno stacks recorded (record --stacks 0): no sites");
    }
    let _ = writeln!(o, "\nleaks at exit: {} blocks, {}", r.leaked_blocks, mb(r.leaked_bytes));
    sites(&mut o, "leaks by site (estimated)", &r.leaks_by_site, &|s| mb(s.leaked_est_bytes));
    let _ = writeln!(o, "\nthread      tid      calls   first (s)   last (s)");
    for t in &r.threads {
        let _ = writeln!(
            o,
            "{:>6} {:>8} {:>10} {:>11.3} {:>10.3}{}",
            t.index,
            t.tid,
            t.calls,
            t.first_s,
            t.last_s,
            if t.ended { "  ended" } else { "" }
        );
    }
    o
}
