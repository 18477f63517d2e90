//! What `replay` prints and writes: per contender the medians over its
//! rounds, as a table and as JSON.

use super::measure::Run;
use super::workload::Workload;
use crate::bench::contenders::Contender;
use serde::Serialize;

#[derive(Serialize)]
pub struct Results {
    pub workload: Workload,
    pub contenders: Vec<Contender>,
    pub summary: Vec<Summary>,
    pub runs: Vec<Run>,
}

/// One contender's medians over its rounds (None where every round failed).
#[derive(Serialize, Clone, Debug, Default)]
pub struct Summary {
    pub contender: String,
    /// "ok", or the first failure's status.
    pub status: String,
    pub rounds: usize,
    pub replay_s: Option<f64>,
    /// Replay time against glibc's (both medians).
    pub ratio: Option<f64>,
    pub calls_s: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    pub end_rss_kib: Option<u64>,
    /// Peak RSS / the trace's peak live bytes.
    pub fragmentation: Option<f64>,
    /// (max - min) / min of the replay times, when more than one round ran.
    pub spread: Option<f64>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl Results {
    pub fn new(workload: &Workload, contenders: &[Contender], runs: Vec<Run>) -> Results {
        let mut summary: Vec<Summary> = contenders
            .iter()
            .enumerate()
            .map(|(c, contender)| {
                let mine: Vec<&Run> = runs.iter().filter(|r| r.contender == c).collect();
                let ok: Vec<&Run> = mine.iter().copied().filter(|r| r.ok()).collect();
                let status = mine.iter().find(|r| !r.ok()).map_or("ok".to_string(), |r| r.status.clone());
                let times: Vec<f64> = ok.iter().map(|r| r.replay_s).collect();
                let peak = median(ok.iter().map(|r| r.peak_rss_kib as f64).collect()).map(|k| k as u64);
                let spread = (times.len() > 1).then(|| {
                    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = times.iter().copied().fold(0.0, f64::max);
                    if min > 0.0 {
                        (max - min) / min
                    } else {
                        0.0
                    }
                });
                Summary {
                    contender: contender.name.clone(),
                    status,
                    rounds: ok.len(),
                    replay_s: median(times),
                    ratio: None,
                    calls_s: median(ok.iter().map(|r| r.calls_s).collect()),
                    peak_rss_kib: peak,
                    end_rss_kib: median(ok.iter().map(|r| r.end_rss_kib as f64).collect()).map(|k| k as u64),
                    fragmentation: peak
                        .filter(|_| workload.peak_live_bytes > 0)
                        .map(|k| (k * 1024) as f64 / workload.peak_live_bytes as f64),
                    spread,
                }
            })
            .collect();
        let base = summary.first().and_then(|s| s.replay_s).filter(|&t| t > 0.0);
        for s in &mut summary {
            s.ratio = base.zip(s.replay_s).map(|(b, t)| t / b);
        }
        Results { workload: workload.clone(), contenders: contenders.to_vec(), summary, runs }
    }

    pub fn any_failed(&self) -> bool {
        self.summary.iter().any(|s| s.status != "ok")
    }

    pub fn table(&self) -> String {
        let w = &self.workload;
        let mut out = format!(
            "replay of {}: {} operations on {} thread(s), peak live {} (the trace's, the same for every heap)\n\n",
            w.program,
            w.operations,
            w.threads,
            mib(w.peak_live_bytes)
        );
        let header = ["contender", "time", "vs glibc", "in calls", "peak RSS", "RSS at end", "frag.", "spread"];
        let mut rows: Vec<[String; 8]> = vec![header.map(String::from)];
        for s in &self.summary {
            if s.rounds == 0 {
                let mut row: [String; 8] = Default::default();
                row[0] = s.contender.clone();
                row[1] = format!("failed: {}", s.status);
                rows.push(row);
                continue;
            }
            rows.push([
                s.contender.clone(),
                s.replay_s.map_or("-".into(), |t| format!("{:.3} s", t)),
                s.ratio.map_or("-".into(), |r| format!("{:.2}x", r)),
                s.calls_s.map_or("-".into(), |t| format!("{:.3} s", t)),
                s.peak_rss_kib.map_or("-".into(), |k| mib(k * 1024)),
                s.end_rss_kib.map_or("-".into(), |k| mib(k * 1024)),
                s.fragmentation.map_or("-".into(), |f| format!("{:.2}", f)),
                match s.spread {
                    Some(x) if x > 0.2 => format!("{:.0}% noisy", x * 100.0),
                    Some(x) => format!("{:.0}%", x * 100.0),
                    None => "-".into(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..8).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.is_empty())
                .map(|(i, c)| if i == 0 { format!("{:<w$}", c, w = widths[i]) } else { format!("{:>w$}", c, w = widths[i]) })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "\ntime: the replay, first operation to last (median of rounds); in calls: inside the allocator, {};\n\
             frag.: peak RSS / peak live bytes (the replayer's own memory included, the same for all)\n",
            self.timed_share()
        ));
        if w.skipped > 0 {
            out.push_str(&format!("{} call(s) of the trace not replayed (failed in the recording, or size queries)\n", w.skipped));
        }
        out
    }

    /// How "in calls" was measured: the share of calls timed (the same in
    /// every run: the sample is drawn by operation, not by time).
    fn timed_share(&self) -> String {
        match self.runs.iter().find(|r| r.ok() && r.calls > 0) {
            Some(r) if r.timed_calls >= r.calls => "every call timed".to_string(),
            Some(r) => format!("estimated from {:.1}% of the calls, timed (docs/replay.md)", 100.0 * r.timed_calls as f64 / r.calls as f64),
            None => "timed".to_string(),
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the results are plain data") + "\n"
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}
