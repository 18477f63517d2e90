//! The table on the terminal: workloads as rows, contenders as columns,
//! each cell the median time as a ratio to glibc's (glibc's own column: the
//! time itself) and the peak RSS; `*` marks the fastest in a row, `~` a
//! spread too wide to trust. Failures and skipped workloads are said in
//! place, with the details under the table.

use super::results::Results;
use super::summary::Cell;

/// Longer workload names (a user's command line) are cut to this.
const NAME_WIDTH: usize = 28;

pub fn render(r: &Results) -> String {
    let mut out = String::new();
    out.push_str(&format!("alloc8 bench: {}\n", r.machine.note()));
    out.push_str(&format!(
        "{} round(s) per contender, interleaved; {} thread(s) in the threaded workloads{}\n",
        r.settings.rounds,
        r.settings.threads,
        if r.settings.quick { "; --quick: a tenth of the full sizes" } else { "" }
    ));
    out.push_str(
        "time: median wall time, as a ratio to glibc's (under 1 is faster); RSS: peak resident memory; * fastest; ~ wide spread\n\n",
    );

    let names: Vec<String> = r.workloads.iter().map(|w| cut(&w.name, NAME_WIDTH)).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max("workload".len());
    let widths: Vec<usize> = r.contenders.iter().map(|c| c.name.chars().count().max(CELL)).collect();

    out.push_str(&format!("{:<w$}", "workload", w = name_width));
    for (c, contender) in r.contenders.iter().enumerate() {
        out.push_str(&format!("  {:>w$}", contender.name, w = widths[c]));
    }
    out.push('\n');

    for (w, info) in r.workloads.iter().enumerate() {
        out.push_str(&format!("{:<nw$}", names[w], nw = name_width));
        if let Some(why) = &info.skipped {
            out.push_str(&format!("  skipped: {}\n", why));
            continue;
        }
        for (c, width) in widths.iter().enumerate() {
            let text = r.cell(w, c).map(|cell| cell_text(cell, c == 0)).unwrap_or_default();
            out.push_str(&format!("  {:>w$}", text, w = width));
        }
        out.push('\n');
    }

    let failures: Vec<String> = r
        .cells
        .iter()
        .filter_map(|c| {
            c.failed.as_ref().map(|why| format!("  {} under {}: {}", r.workloads[c.workload].name, r.contenders[c.contender].name, why))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\nfailed (not run again on that workload):\n");
        for f in failures {
            out.push_str(&f);
            out.push('\n');
        }
    }
    let warnings = r.warnings();
    if !warnings.is_empty() {
        out.push('\n');
        for w in warnings {
            out.push_str(&format!("warning: {}\n", w));
        }
    }
    out
}

/// "  *0.52x~  3.6M": time (8), the spread mark, a space, RSS (5); or "failed: SIGABRT".
const CELL: usize = 16;

fn cell_text(cell: &Cell, baseline: bool) -> String {
    if let Some(status) = &cell.failed {
        return failed_text(status);
    }
    let time = match (baseline, cell.median_s, cell.ratio) {
        (true, Some(t), _) => seconds(t),
        (false, _, Some(ratio)) => format!("{}x", ratio_text(ratio)),
        (false, Some(t), None) => seconds(t), // glibc failed: no ratio, the time itself
        _ => "-".into(),
    };
    let marks = format!("{}{}", if cell.best { "*" } else { "" }, time);
    let rss = cell.peak_rss_kib.map(mib).unwrap_or_else(|| "-".into());
    format!("{:>8}{} {:>5}", marks, if cell.wide() { "~" } else { " " }, rss)
}

/// "failed: SIGABRT", "failed: exit 3", "timed out": the status up to its
/// details (they are listed under the table).
fn failed_text(status: &str) -> String {
    if status.starts_with("timed out") {
        return "timed out".into();
    }
    let short = status.split(':').next().unwrap_or(status);
    format!("failed: {}", cut(short, 9))
}

pub fn ratio_text(r: f64) -> String {
    if r < 0.1 {
        format!("{:.3}", r)
    } else if r < 10.0 {
        format!("{:.2}", r)
    } else if r < 100.0 {
        format!("{:.1}", r)
    } else {
        format!("{:.0}", r)
    }
}

pub fn seconds(t: f64) -> String {
    if t >= 10.0 {
        format!("{:.1}s", t)
    } else if t >= 1.0 {
        format!("{:.2}s", t)
    } else if t >= 0.01 {
        format!("{:.0}ms", t * 1000.0)
    } else {
        format!("{:.1}ms", t * 1000.0)
    }
}

pub fn mib(kib: u64) -> String {
    let m = kib as f64 / 1024.0;
    if m < 10.0 {
        format!("{:.1}M", m)
    } else if m < 1024.0 {
        format!("{:.0}M", m)
    } else {
        format!("{:.1}G", m / 1024.0)
    }
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        s.chars().take(width - 1).chain(std::iter::once('…')).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(ratio_text(0.0771), "0.077");
        assert_eq!(ratio_text(0.5), "0.50");
        assert_eq!(ratio_text(36.54), "36.5");
        assert_eq!(ratio_text(123.4), "123");
        assert_eq!(seconds(0.712), "712ms");
        assert_eq!(seconds(0.0042), "4.2ms");
        assert_eq!(seconds(1.234), "1.23s");
        assert_eq!(mib(3700), "3.6M");
        assert_eq!(mib(115_000), "112M");
        assert_eq!(mib(2 * 1024 * 1024), "2.0G");
        assert_eq!(cut("python3 a-very-long-script-name.py", 12), "python3 a-v…");
        assert_eq!(failed_text("SIGABRT: malloc(): corrupted top size"), "failed: SIGABRT");
        assert_eq!(failed_text("exit 3: workload failed: x"), "failed: exit 3");
        assert_eq!(failed_text("timed out after 30 s"), "timed out");
        assert_eq!(failed_text("cannot start: no such file"), "failed: cannot s…");
    }
}
