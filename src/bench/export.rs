//! `--json` and `--csv`: every measured round (and, in the JSON, the
//! machine, the settings, the contenders, the workloads and the summary), by
//! name rather than index so either file stands on its own.

use super::results::Results;
use serde_json::json;

pub fn json(r: &Results) -> String {
    let rounds: Vec<_> = r
        .records
        .iter()
        .map(|rec| {
            json!({
                "workload": r.workloads[rec.workload].name,
                "contender": r.contenders[rec.contender].name,
                "round": rec.round,
                "wall_s": rec.wall_s,
                "user_s": rec.user_s,
                "sys_s": rec.sys_s,
                "peak_rss_kib": rec.peak_rss_kib,
                "status": rec.status,
            })
        })
        .collect();
    let summary: Vec<_> = r
        .cells
        .iter()
        .map(|c| {
            json!({
                "workload": r.workloads[c.workload].name,
                "contender": r.contenders[c.contender].name,
                "runs": c.runs,
                "median_s": c.median_s,
                "fastest_s": c.fastest_s,
                "slowest_s": c.slowest_s,
                "spread": c.spread,
                "ratio": c.ratio,
                "peak_rss_kib": c.peak_rss_kib,
                "rss_ratio": c.rss_ratio,
                "best": c.best,
                "failed": c.failed,
            })
        })
        .collect();
    let doc = json!({
        "machine": r.machine,
        "settings": r.settings,
        "baseline": r.contenders[0].name,
        "contenders": r.contenders,
        "workloads": r.workloads,
        "rounds": rounds,
        "summary": summary,
        "warnings": r.warnings(),
    });
    serde_json::to_string_pretty(&doc).expect("plain data") + "\n"
}

pub const CSV_HEADER: &str = "workload,contender,round,wall_s,user_s,sys_s,peak_rss_kib,status";

pub fn csv(r: &Results) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for rec in &r.records {
        out.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{},{}\n",
            field(&r.workloads[rec.workload].name),
            field(&r.contenders[rec.contender].name),
            rec.round,
            rec.wall_s,
            rec.user_s,
            rec.sys_s,
            rec.peak_rss_kib,
            field(&rec.status)
        ));
    }
    out
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(super::field("pairs"), "pairs");
        assert_eq!(super::field("exit 3: a, b"), "\"exit 3: a, b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
