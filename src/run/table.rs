//! The text report `run` prints: one row per process, or past
//! [`GROUP_OVER`] processes (a build script, a shell loop, 10,000 forks) one
//! row per program with counts, totals and the worst case. `--all` lists
//! every process anyway; the JSON report always does.

use super::report::{End, Process, Stats};
use std::fmt::Write as _;

/// More rows than this are grouped by program.
pub const GROUP_OVER: usize = 20;

/// The heading, the table and the notes that explain it. `what` names the
/// heap and library (`heap system (/x/libsystem.so)`).
/// `c_heap`: the heap is C/C++ (xxmalloc), so advice about statistics is given in its language.
pub fn text(rows: &[Process], all: bool, what: &str, c_heap: bool) -> String {
    let mut out = String::new();
    let listed: Vec<&Process> = listed(rows).collect();
    let grouped = !all && listed.len() > GROUP_OVER;
    let _ = writeln!(
        out,
        "alloc8: {} in {} process(es){}:",
        what,
        super::report::pid_count(rows),
        if grouped { ", by program (`--all` lists each process)" } else { "" }
    );
    out.push_str(&if grouped { by_program(&listed) } else { per_process(&listed) });
    if rows.iter().any(|r| r.end == End::Unknown) {
        out.push_str("  (no report: the process ended by _exit or a signal, or exec'd a program without the shim)\n");
    }
    if rows.iter().any(|r| r.end == End::Exit) && rows.iter().all(|r| r.stats.is_none()) {
        out.push_str(if c_heap {
            "  (this heap keeps no statistics: define `int xxmalloc_stats(struct alloc8_stats *)` for calls and bytes; docs/xxmalloc.md)\n"
        } else {
            "  (this heap keeps no statistics: implement Heap::stats for calls and bytes)\n"
        });
    } else if rows.iter().filter_map(|r| r.stats.as_ref()).any(|s| !s.keeps_allocated() || !s.keeps_live()) {
        out.push_str("  (-: a statistic this heap does not keep)\n");
    }
    out
}

/// One row per program image that ended (or never said); images a pid
/// replaced by exec (`env`, wrapper scripts) ran no heap work worth a row.
fn listed(rows: &[Process]) -> impl Iterator<Item = &Process> {
    rows.iter().filter(|r| r.end != End::Exec)
}

impl Stats {
    /// A heap that counts calls but not bytes reports 0 bytes after its
    /// mallocs: that 0 is "not kept", not "none".
    fn keeps_allocated(&self) -> bool {
        self.mallocs == 0 || self.bytes_allocated > 0
    }

    fn keeps_live(&self) -> bool {
        self.mallocs == 0 || self.peak_live_bytes > 0
    }
}

fn dash() -> String {
    "-".to_string()
}

fn per_process(rows: &[&Process]) -> String {
    let threads = rows.iter().any(|r| r.threads.is_some());
    let mut header = vec!["pid", "parent", "bound", "mallocs", "frees", "reallocs", "allocated", "peak live", "live at end"];
    if threads {
        // Thread hooks of `--threads` shims: threads that got thread_init / thread_cleanup.
        header.push("threads init/cleanup");
    }
    header.extend(["end", "program"]);
    let mut cells: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let mut row = vec![
            r.pid.to_string(),
            r.parent.map_or_else(dash, |p| p.to_string()),
            match r.bound {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "?".into(),
            },
        ];
        match &r.stats {
            Some(s) => row.extend([
                s.mallocs.to_string(),
                s.frees.to_string(),
                s.reallocs.to_string(),
                kept(s.keeps_allocated(), s.bytes_allocated),
                kept(s.keeps_live(), s.peak_live_bytes),
                kept(s.keeps_live(), s.live_bytes),
            ]),
            None => row.extend(std::iter::repeat_with(dash).take(6)),
        }
        if threads {
            row.push(r.threads.map_or_else(dash, |t| format!("{}/{}", t.inits, t.cleanups)));
        }
        row.extend([end_name(r.end).to_string(), program(r)]);
        cells.push(row);
    }
    layout(&header, &cells, 2)
}

/// One row per program: how many processes ran it, how many were bound,
/// totals of the counters, the worst peak and leftover of any one process,
/// and how they ended.
fn by_program(rows: &[&Process]) -> String {
    let mut groups: Vec<(String, Vec<&Process>)> = Vec::new();
    for r in rows {
        let name = program(r);
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(r),
            None => groups.push((name, vec![r])),
        }
    }
    let threads = rows.iter().any(|r| r.threads.is_some());
    let mut header = vec!["processes", "bound", "mallocs", "frees", "reallocs", "allocated", "worst peak live", "worst live at end"];
    if threads {
        header.push("threads init/cleanup");
    }
    header.extend(["ends", "program"]);
    let mut cells = Vec::new();
    for (name, members) in &groups {
        let stats: Vec<&Stats> = members.iter().filter_map(|r| r.stats.as_ref()).collect();
        let total = |f: fn(&Stats) -> u64| if stats.is_empty() { dash() } else { stats.iter().map(|s| f(s)).sum::<u64>().to_string() };
        let bytes_total = |keeps: fn(&Stats) -> bool, f: fn(&Stats) -> u64| {
            let kept: Vec<&&Stats> = stats.iter().filter(|s| keeps(s)).collect();
            if kept.is_empty() {
                dash()
            } else {
                bytes(kept.iter().map(|s| f(s)).sum())
            }
        };
        let worst = |f: fn(&Stats) -> u64| match stats.iter().filter(|s| s.keeps_live()).map(|s| f(s)).max() {
            Some(n) => bytes(n),
            None => dash(),
        };
        let mut row = vec![
            members.len().to_string(),
            bound(members),
            total(|s| s.mallocs),
            total(|s| s.frees),
            total(|s| s.reallocs),
            bytes_total(Stats::keeps_allocated, |s| s.bytes_allocated),
            worst(|s| s.peak_live_bytes),
            worst(|s| s.live_bytes),
        ];
        if threads {
            let hooks: Vec<_> = members.iter().filter_map(|r| r.threads).collect();
            row.push(if hooks.is_empty() {
                dash()
            } else {
                format!("{}/{}", hooks.iter().map(|t| t.inits).sum::<u64>(), hooks.iter().map(|t| t.cleanups).sum::<u64>())
            });
        }
        row.extend([ends(members), name.clone()]);
        cells.push(row);
    }
    layout(&header, &cells, 1)
}

/// "yes" when every process's malloc was the shim's, else how many of them were.
fn bound(members: &[&Process]) -> String {
    let yes = members.iter().filter(|r| r.bound == Some(true)).count();
    match yes {
        n if n == members.len() => "yes".to_string(),
        0 if members.iter().all(|r| r.bound == Some(false)) => "NO".to_string(),
        n => format!("{}/{}", n, members.len()),
    }
}

/// "exit" when all ran their exit handlers, else the count of each ending.
fn ends(members: &[&Process]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in members {
        let name = end_name(r.end);
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    match &counts[..] {
        [(name, _)] => name.to_string(),
        _ => counts.iter().map(|(n, c)| format!("{} {}", c, n)).collect::<Vec<_>>().join(", "),
    }
}

fn end_name(end: End) -> &'static str {
    match end {
        End::Exit => "exit",
        End::Exec => "exec",
        End::Unknown => "no report",
    }
}

fn program(r: &Process) -> String {
    r.exe.clone().unwrap_or_else(|| "?".into())
}

fn kept(keeps: bool, n: u64) -> String {
    if keeps {
        bytes(n)
    } else {
        dash()
    }
}

/// Columns right-aligned (numbers), but the one at `left` and the last two
/// (how it ended, the program) left-aligned.
fn layout(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    cells.extend(rows.iter().cloned());
    let widths: Vec<usize> = (0..header.len()).map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &cells {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                let _ = write!(line, " {}", cell);
            } else if c == left || c + 2 == row.len() {
                let _ = write!(line, " {:<w$}", cell, w = widths[c]);
            } else {
                let _ = write!(line, " {:>w$}", cell, w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{} B", n);
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{:.1} {}", v, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::super::report::processes;
    use super::*;

    /// A shell that runs `children` copies of /bin/true, each with `stats`.
    fn shell_with_children(children: usize, stats: &str) -> String {
        let mut text = String::from("{\"event\":\"load\",\"pid\":1,\"heap\":\"h\",\"bound\":true,\"exe\":\"/bin/sh\"}\n");
        for i in 0..children {
            let pid = 100 + i;
            let _ = writeln!(text, "{{\"event\":\"fork\",\"pid\":{},\"parent\":1,\"heap\":\"h\"}}", pid);
            let _ = writeln!(text, "{{\"event\":\"load\",\"pid\":{},\"heap\":\"h\",\"bound\":true,\"exe\":\"/bin/true\"}}", pid);
            let _ = writeln!(text, "{{\"event\":\"exit\",\"pid\":{},\"heap\":\"h\",\"exe\":\"/bin/true\",\"stats\":{}}}", pid, stats);
        }
        text.push_str("{\"event\":\"exit\",\"pid\":1,\"heap\":\"h\",\"exe\":\"/bin/sh\"}\n");
        text
    }

    const STATS: &str = r#"{"mallocs":10,"frees":9,"reallocs":1,"bytes_allocated":2048,"live_bytes":100,"peak_live_bytes":1024}"#;

    #[test]
    fn an_exec_replaced_image_gets_no_row() {
        let events = r#"{"event":"load","pid":7,"heap":"h","bound":true,"exe":"/usr/bin/env"}
{"event":"load","pid":7,"heap":"h","bound":true,"exe":"/usr/bin/python3"}
{"event":"exit","pid":7,"heap":"h","exe":"/usr/bin/python3"}
"#;
        let t = text(&processes(events), false, "heap h", false);
        assert!(t.contains("/usr/bin/python3") && !t.contains("/usr/bin/env"), "{}", t);
    }

    #[test]
    fn thread_hook_counts_get_a_column_only_when_a_process_has_them() {
        let plain = r#"{"event":"load","pid":3,"heap":"h","bound":true,"exe":"/bin/true"}
{"event":"exit","pid":3,"heap":"h","exe":"/bin/true"}
"#;
        assert!(!text(&processes(plain), false, "heap h", false).contains("threads"));
        let threaded = r#"{"event":"load","pid":4,"heap":"h","bound":true,"exe":"/usr/bin/python3"}
{"event":"threads","pid":4,"inits":8,"cleanups":7,"flag_flips":1}
{"event":"exit","pid":4,"heap":"h","exe":"/usr/bin/python3"}
"#;
        let t = text(&processes(threaded), false, "heap h", false);
        assert!(t.contains("threads init/cleanup") && t.contains(" 8/7 ") && t.contains("exit"), "{}", t);
    }

    #[test]
    fn twenty_processes_are_listed_and_more_are_grouped_by_program() {
        let twenty = processes(&shell_with_children(19, STATS));
        let t = text(&twenty, false, "heap h", false);
        assert_eq!(t.lines().filter(|l| l.trim_end().ends_with("/bin/true")).count(), 19, "{}", t);

        let rows = processes(&shell_with_children(40, STATS));
        let t = text(&rows, false, "heap h", false);
        assert!(t.starts_with("alloc8: heap h in 41 process(es), by program (`--all` lists each process):\n"), "{}", t);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "heading, header, /bin/true, /bin/sh:\n{}", t);
        assert!(lines[1].contains("processes") && lines[1].contains("worst peak live"), "{}", t);
        let row: Vec<&str> = lines.iter().find(|l| l.ends_with("/bin/true")).unwrap().split_whitespace().collect();
        // 40 processes, all bound; totals of 40 x (10, 9, 1, 2 KiB); worst peak 1 KiB, worst live 100 B.
        assert_eq!(row[..6], ["40", "yes", "400", "360", "40", "80.0"], "{:?}", row);
        assert_eq!(row[6..], ["KiB", "1.0", "KiB", "100", "B", "exit", "/bin/true"], "{:?}", row);
        let sh = lines.iter().find(|l| l.ends_with("/bin/sh")).unwrap();
        assert!(sh.trim_start().starts_with("1 ") && sh.contains(" - "), "the shell kept no statistics: {}", sh);

        let all = text(&rows, true, "heap h", false);
        assert_eq!(all.lines().filter(|l| l.trim_end().ends_with("/bin/true")).count(), 40, "{}", all);
    }

    #[test]
    fn ten_thousand_forks_are_one_row() {
        let rows = processes(&shell_with_children(10_000, STATS));
        let t = text(&rows, false, "heap h", false);
        assert!(t.len() < 1000, "{} bytes:\n{}", t.len(), t);
        assert!(t.lines().any(|l| l.trim_start().starts_with("10000 ") && l.ends_with("/bin/true")), "{}", t);
    }

    #[test]
    fn mixed_endings_and_bindings_are_counted() {
        let mut text_in = shell_with_children(25, STATS);
        // One more /bin/true that was not bound and left no exit report.
        text_in.push_str("{\"event\":\"load\",\"pid\":999,\"heap\":\"h\",\"bound\":false,\"exe\":\"/bin/true\"}\n");
        let t = text(&processes(&text_in), false, "heap h", false);
        let row = t.lines().find(|l| l.ends_with("/bin/true")).unwrap();
        assert!(row.contains(" 25/26 ") && row.contains("25 exit, 1 no report"), "{}", row);
    }

    #[test]
    fn byte_statistics_a_heap_does_not_keep_are_a_dash() {
        let counts_only = r#"{"mallocs":10,"frees":9,"reallocs":0,"bytes_allocated":0,"live_bytes":0,"peak_live_bytes":0}"#;
        let rows = processes(&shell_with_children(1, counts_only));
        let t = text(&rows, false, "heap h", false);
        let row: Vec<&str> = t.lines().find(|l| l.ends_with("/bin/true")).unwrap().split_whitespace().collect();
        assert_eq!(row[3..9], ["10", "9", "0", "-", "-", "-"], "{}", t);
        assert!(!t.contains("0 B") && t.contains("(-: a statistic this heap does not keep)"), "{}", t);
        // Nothing allocated at all is a real zero.
        let idle = r#"{"mallocs":0,"frees":0,"reallocs":0,"bytes_allocated":0,"live_bytes":0,"peak_live_bytes":0}"#;
        let t = text(&processes(&shell_with_children(1, idle)), false, "heap h", false);
        assert!(t.contains(" 0 B ") && !t.contains("does not keep"), "{}", t);
        // All freed: live 0 B is a real zero too.
        let freed = r#"{"mallocs":3,"frees":3,"reallocs":0,"bytes_allocated":96,"live_bytes":0,"peak_live_bytes":64}"#;
        let t = text(&processes(&shell_with_children(1, freed)), false, "heap h", false);
        assert!(t.contains(" 96 B ") && t.contains(" 64 B ") && t.contains(" 0 B "), "{}", t);
    }

    #[test]
    fn byte_counts_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
