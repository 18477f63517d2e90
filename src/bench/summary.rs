//! From rounds to cells (one workload under one contender): the median wall
//! time and its spread, the ratio to glibc's median, the median peak RSS,
//! and which contender was fastest in each workload.

use super::measure::Record;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub workload: usize,
    pub contender: usize,
    /// Rounds that ran to a clean exit.
    pub runs: usize,
    pub median_s: Option<f64>,
    pub fastest_s: Option<f64>,
    pub slowest_s: Option<f64>,
    /// (slowest - fastest) / median; None with fewer than two runs.
    pub spread: Option<f64>,
    /// median_s / glibc's median_s.
    pub ratio: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    pub rss_ratio: Option<f64>,
    /// The status of the run that failed; a failed cell gets no ratio.
    pub failed: Option<String>,
    /// The fastest contender of its workload.
    pub best: bool,
}

/// A spread above this makes a ratio near 1 meaningless: it is flagged.
pub const WIDE_SPREAD: f64 = 0.10;

impl Cell {
    pub fn wide(&self) -> bool {
        self.spread.is_some_and(|s| s > WIDE_SPREAD)
    }
}

/// One cell per workload that ran and contender, workload by workload; the
/// baseline is contender 0.
pub fn cells(records: &[Record], workloads: &[usize], contenders: usize) -> Vec<Cell> {
    let mut out = Vec::new();
    for &w in workloads {
        let row_start = out.len();
        for c in 0..contenders {
            let runs: Vec<&Record> = records.iter().filter(|r| r.workload == w && r.contender == c).collect();
            let failed = runs.iter().find(|r| !r.ok()).map(|r| r.status.clone());
            let ok: Vec<&Record> = runs.iter().copied().filter(|r| r.ok()).collect();
            let walls: Vec<f64> = ok.iter().map(|r| r.wall_s).collect();
            let rss: Vec<f64> = ok.iter().map(|r| r.peak_rss_kib as f64).collect();
            let median_s = median(&walls);
            out.push(Cell {
                workload: w,
                contender: c,
                runs: ok.len(),
                median_s,
                fastest_s: (!walls.is_empty()).then(|| min(&walls)),
                slowest_s: (!walls.is_empty()).then(|| max(&walls)),
                spread: match (walls.len() >= 2, median_s) {
                    (true, Some(m)) if m > 0.0 => Some((max(&walls) - min(&walls)) / m),
                    _ => None,
                },
                ratio: None,
                peak_rss_kib: median(&rss).map(|r| r.round() as u64),
                rss_ratio: None,
                failed,
                best: false,
            });
        }
        let row = &mut out[row_start..];
        let base = if row[0].failed.is_none() { (row[0].median_s, row[0].peak_rss_kib) } else { (None, None) };
        for cell in row.iter_mut().filter(|c| c.failed.is_none()) {
            cell.ratio = ratio(cell.median_s, base.0);
            cell.rss_ratio = ratio(cell.peak_rss_kib.map(|r| r as f64), base.1.map(|r| r as f64));
        }
        let timed: Vec<usize> = (0..row.len()).filter(|&i| row[i].failed.is_none() && row[i].median_s.is_some()).collect();
        if timed.len() >= 2 {
            let fastest = timed.iter().copied().min_by(|&a, &b| row[a].median_s.partial_cmp(&row[b].median_s).unwrap()).unwrap();
            row[fastest].best = true;
        }
    }
    out
}

fn ratio(x: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (x, base) {
        (Some(x), Some(b)) if b > 0.0 => Some(x / b),
        _ => None,
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(workload: usize, contender: usize, wall_s: f64, rss: u64, status: &str) -> Record {
        Record { workload, contender, round: 1, wall_s, user_s: 0.0, sys_s: 0.0, peak_rss_kib: rss, status: status.into() }
    }

    #[test]
    fn medians_spreads_ratios_and_the_best() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let records = vec![
            rec(0, 0, 1.0, 100, "ok"),
            rec(0, 0, 1.2, 100, "ok"),
            rec(0, 0, 0.9, 100, "ok"),
            rec(0, 1, 0.5, 300, "ok"),
            rec(0, 1, 0.5, 300, "ok"),
            rec(0, 1, 0.5, 300, "ok"),
            rec(0, 2, 0.2, 50, "ok"),
            rec(0, 2, 0.0, 0, "SIGSEGV"),
        ];
        let cells = cells(&records, &[0], 3);
        assert_eq!(cells[0].median_s, Some(1.0));
        assert_eq!((cells[0].fastest_s, cells[0].slowest_s), (Some(0.9), Some(1.2)));
        assert!((cells[0].spread.unwrap() - 0.3).abs() < 1e-9);
        assert!(cells[0].wide());
        assert_eq!(cells[1].ratio, Some(0.5));
        assert_eq!(cells[1].rss_ratio, Some(3.0));
        assert_eq!(cells[1].spread, Some(0.0));
        assert!(cells[1].best, "the fastest contender that did not fail");
        assert_eq!(cells[2].failed.as_deref(), Some("SIGSEGV"));
        assert_eq!(cells[2].ratio, None);
        assert!(!cells[0].best && !cells[2].best);
    }

    #[test]
    fn no_ratio_when_glibc_failed() {
        let records = vec![rec(0, 0, 1.0, 100, "exit 1"), rec(0, 1, 0.5, 100, "ok")];
        let cells = cells(&records, &[0], 2);
        assert_eq!(cells[1].ratio, None);
        assert_eq!(cells[1].median_s, Some(0.5));
        assert!(!cells[1].best, "one timed contender is no contest");
    }
}
