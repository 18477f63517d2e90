//! Reading the shim's JSON lines back into one row per process (table.rs prints them).
//!
//! Every process that loaded the shim appended `load`, `fork` and `exit`
//! lines (crates/alloc8/src/report.rs). They become one row per program
//! image: a forked copy that then execs is one row (the new program, with
//! its parent); a pid that execs again gets a new row.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub mallocs: u64,
    pub frees: u64,
    pub reallocs: u64,
    pub bytes_allocated: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    pid: i32,
    #[serde(default)]
    parent: Option<i32>,
    #[serde(default)]
    heap: Option<String>,
    #[serde(default)]
    bound: Option<bool>,
    #[serde(default)]
    exe: Option<String>,
    #[serde(default)]
    stats: Option<Stats>,
    #[serde(default)]
    inits: Option<u64>,
    #[serde(default)]
    cleanups: Option<u64>,
    /// `crash` and `check` events (see crash.rs).
    #[serde(flatten)]
    diagnosis: super::crash::Fields,
}

/// Thread hooks that ran in a process (`--threads` shims).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Threads {
    pub inits: u64,
    pub cleanups: u64,
}

/// How a row's program image ended, as far as the shim could tell.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// Ran its exit handlers: the shim wrote its exit line.
    Exit,
    /// The pid exec'd another program (next row with the same pid).
    Exec,
    /// No word: killed by a signal, `_exit`, or still running.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub pid: i32,
    pub parent: Option<i32>,
    pub exe: Option<String>,
    pub heap: Option<String>,
    /// Whether malloc in this image resolved to the shim.
    pub bound: Option<bool>,
    /// Came in by fork (the parent's image) rather than by loading the shim.
    pub forked: bool,
    pub end: End,
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<Threads>,
    /// How it died, if a signal ended it under `alloc8 run` (see crash.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<super::crash::Crash>,
    /// What the checking layer (`--checked`) found, if it stopped the process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<super::crash::Check>,
    /// What the guard pool did (`--checked=guard`, `--guard-sample`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<super::crash::Guard>,
}

impl Process {
    /// A row with nothing known yet but which program it is.
    fn new(pid: i32, exe: Option<String>, heap: Option<String>, bound: Option<bool>) -> Process {
        Process {
            pid,
            parent: None,
            exe,
            heap,
            bound,
            forked: false,
            end: End::Unknown,
            stats: None,
            threads: None,
            crash: None,
            check: None,
            guard: None,
        }
    }
}

/// The row of `pid`'s current program, made with `make` if it has none yet
/// (its load line never came).
fn row_of(rows: &mut Vec<Process>, current: &mut HashMap<i32, usize>, pid: i32, make: impl FnOnce() -> Process) -> usize {
    *current.entry(pid).or_insert_with(|| {
        rows.push(make());
        rows.len() - 1
    })
}

/// Rows in order of first appearance; unreadable lines (a process killed
/// mid-write) are skipped.
pub fn processes(text: &str) -> Vec<Process> {
    let mut rows: Vec<Process> = Vec::new();
    let mut current: HashMap<i32, usize> = HashMap::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Event>(line) else { continue };
        let cur = current.get(&e.pid).copied();
        match e.event.as_str() {
            "load" => {
                let row = Process { parent: cur.and_then(|i| rows[i].parent), ..Process::new(e.pid, e.exe, e.heap, e.bound) };
                match cur {
                    // A forked copy that exec'd: the new program takes its row.
                    Some(i) if rows[i].forked && rows[i].end == End::Unknown => rows[i] = row,
                    Some(i) => {
                        if rows[i].end == End::Unknown {
                            rows[i].end = End::Exec;
                        }
                        rows.push(row);
                        current.insert(e.pid, rows.len() - 1);
                    }
                    None => {
                        rows.push(row);
                        current.insert(e.pid, rows.len() - 1);
                    }
                }
            }
            "fork" => {
                let from = e.parent.and_then(|p| current.get(&p)).map(|&i| rows[i].clone());
                rows.push(Process {
                    parent: e.parent,
                    forked: true,
                    ..Process::new(
                        e.pid,
                        from.as_ref().and_then(|p| p.exe.clone()),
                        e.heap.or_else(|| from.as_ref().and_then(|p| p.heap.clone())),
                        from.as_ref().and_then(|p| p.bound),
                    )
                });
                current.insert(e.pid, rows.len() - 1);
            }
            "exit" => {
                let i = row_of(&mut rows, &mut current, e.pid, || Process::new(e.pid, None, e.heap.clone(), None));
                let row = &mut rows[i];
                row.end = End::Exit;
                row.stats = e.stats;
                if row.exe.is_none() {
                    row.exe = e.exe;
                }
            }
            "threads" => {
                if let (Some(i), Some(inits), Some(cleanups)) = (cur, e.inits, e.cleanups) {
                    rows[i].threads = Some(Threads { inits, cleanups });
                }
            }
            "crash" => {
                if let Some(i) = cur {
                    rows[i].crash = e.diagnosis.crash();
                }
            }
            "guard" => {
                if let Some(i) = cur {
                    rows[i].guard = serde_json::from_str(line).ok();
                }
            }
            "check" => {
                // A finding may come before the shim's constructor wrote its
                // load line (a heap bug in the program's first allocations):
                // the shim served the call, so it was alive and bound.
                let i = row_of(&mut rows, &mut current, e.pid, || Process::new(e.pid, e.exe.clone(), e.heap.clone(), Some(true)));
                rows[i].check = e.diagnosis.check();
            }
            _ => {}
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_that_execs_becomes_the_new_program_with_its_parent() {
        let text = r#"{"event":"load","pid":10,"heap":"system","bound":true,"exe":"/bin/sh"}
{"event":"fork","pid":11,"parent":10,"heap":"system"}
{"event":"load","pid":11,"heap":"system","bound":true,"exe":"/bin/ls"}
{"event":"exit","pid":11,"heap":"system","exe":"/bin/ls","stats":{"mallocs":5,"frees":4,"reallocs":0,"bytes_allocated":100,"live_bytes":8,"peak_live_bytes":60}}
{"event":"fork","pid":12,"parent":10,"heap":"system"}
not json
{"event":"exit","pid":10,"heap":"system","exe":"/bin/sh"}
"#;
        let rows = processes(text);
        assert_eq!(rows.len(), 3, "{:?}", rows);
        assert_eq!((rows[0].pid, rows[0].parent, rows[0].end), (10, None, End::Exit));
        assert_eq!((rows[1].pid, rows[1].parent, rows[1].exe.as_deref()), (11, Some(10), Some("/bin/ls")));
        assert_eq!(rows[1].stats.unwrap().mallocs, 5);
        assert!(!rows[1].forked);
        assert_eq!((rows[2].pid, rows[2].exe.as_deref(), rows[2].end, rows[2].forked), (12, Some("/bin/sh"), End::Unknown, true));
    }

    #[test]
    fn an_exec_without_fork_starts_a_new_row_for_the_same_pid() {
        let text = r#"{"event":"load","pid":7,"heap":"h","bound":true,"exe":"/usr/bin/env"}
{"event":"load","pid":7,"heap":"h","bound":true,"exe":"/usr/bin/python3"}
{"event":"exit","pid":7,"heap":"h","exe":"/usr/bin/python3"}
"#;
        let rows = processes(text);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].end, rows[1].end), (End::Exec, End::Exit));
    }

    #[test]
    fn thread_hook_counts_are_read() {
        let threaded = r#"{"event":"load","pid":4,"heap":"h","bound":true,"exe":"/usr/bin/python3"}
{"event":"threads","pid":4,"inits":8,"cleanups":7,"flag_flips":1}
{"event":"exit","pid":4,"heap":"h","exe":"/usr/bin/python3"}
"#;
        let rows = processes(threaded);
        assert_eq!(rows[0].threads, Some(Threads { inits: 8, cleanups: 7 }));
    }
}

/// Distinct pids among the rows.
pub fn pid_count(rows: &[Process]) -> usize {
    let mut pids: Vec<i32> = rows.iter().map(|r| r.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}
