//! What is timed: the bundled workloads (C programs written for alloc8, each
//! telling allocators apart in a known way, and real programs found on the
//! machine), chosen with `--workload`, and the user's own command.

use super::compile;
use super::real_programs::{self, RealProgram};
use crate::run::program;
use anyhow::{bail, Result};
use std::ffi::OsString;
use std::path::PathBuf;

pub struct Bundled {
    pub name: &'static str,
    /// What it stresses, in a line (`--list`, the JSON; docs/bench.md says more).
    pub stresses: &'static str,
    pub source: Source,
    /// The work (N) of a full-size run; `--quick` runs a tenth of it.
    pub full: u64,
}

pub enum Source {
    /// A C program run as `prog N THREADS` (src/bench/programs/).
    C(&'static str),
    Real(RealProgram),
    /// A trace `alloc8 record` wrote of a real program (src/bench/traces/),
    /// replayed as `alloc8 replay` does; N is the operations replayed.
    Trace(&'static [u8]),
}

/// In table order. Full sizes take about a second under glibc on one core of
/// the project's machines (realloc less: size-class heaps take 10-40x longer).
pub const BUNDLED: &[Bundled] = &[
    Bundled {
        name: "pairs",
        stresses: "malloc/free of one small block in a loop, one thread: the fast path alone",
        source: Source::C(include_str!("programs/pairs.c")),
        full: 50_000_000,
    },
    Bundled {
        name: "mixed",
        stresses: "4096 live blocks of 8..4096 B replaced at random: size classes and reuse",
        source: Source::C(include_str!("programs/mixed.c")),
        full: 10_000_000,
    },
    Bundled {
        name: "pareto",
        stresses: "heavy-tailed sizes and lifetimes, blocks written in full: packing, fragmentation, RSS",
        source: Source::C(include_str!("programs/pareto.c")),
        full: 10_000_000,
    },
    Bundled {
        name: "realloc",
        stresses: "a buffer grown by doubling from 16 B to 64 KiB: in-place growth versus copying",
        source: Source::C(include_str!("programs/realloc.c")),
        full: 500_000,
    },
    Bundled {
        name: "prodcons",
        stresses: "one thread allocates, another frees (THREADS/2 pairs): remote frees",
        source: Source::C(include_str!("programs/prodcons.c")),
        full: 5_000_000,
    },
    Bundled {
        name: "larson",
        stresses: "server churn on THREADS threads, each freeing blocks another thread allocated",
        source: Source::C(include_str!("programs/larson.c")),
        full: 20_000_000,
    },
    Bundled {
        name: "cache-scratch",
        stresses: "small blocks written hard by THREADS threads: false sharing of cache lines",
        source: Source::C(include_str!("programs/cache-scratch.c")),
        full: 1_000_000,
    },
    Bundled {
        name: "thread-churn",
        stresses: "short-lived threads, THREADS at a time, whose blocks outlive them",
        source: Source::C(include_str!("programs/thread-churn.c")),
        full: 20_000,
    },
    Bundled {
        name: "python3",
        stresses: "CPython (PYTHONMALLOC=malloc) building, sorting and serialising dicts, lists and strings",
        source: Source::Real(RealProgram::Python),
        full: 100_000,
    },
    Bundled {
        name: "sqlite3",
        stresses: "an in-memory SQLite database: inserts, an index, grouping and sorting",
        source: Source::Real(RealProgram::Sqlite),
        full: 200_000,
    },
    Bundled {
        name: "gcc",
        stresses: "gcc -O2 compiling a generated C file (cc1's trees and RTL)",
        source: Source::Real(RealProgram::Gcc),
        full: 120,
    },
    Bundled {
        name: "git",
        stresses: "git log -p over a generated history: object parsing, diffs",
        source: Source::Real(RealProgram::Git),
        full: 6_000,
    },
    Bundled {
        name: "python3-trace",
        stresses: "python3's recorded allocations (objects.py 4000, PYTHONMALLOC=malloc), replayed: only the allocator works",
        source: Source::Trace(include_bytes!("traces/python3.a8t")),
        full: 367_000,
    },
    Bundled {
        name: "sqlite3-trace",
        stresses: "sqlite3's recorded allocations (the sqlite3 workload at 20,000 rows), replayed",
        source: Source::Trace(include_bytes!("traces/sqlite3.a8t")),
        full: 135_000,
    },
    Bundled {
        name: "cc1-trace",
        stresses: "gcc's cc1 recorded compiling larson.c at -O2, replayed",
        source: Source::Trace(include_bytes!("traces/cc1.a8t")),
        full: 109_000,
    },
];

/// A ready command: what runs under each contender.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub stdin: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(&'static str, OsString)>,
}

impl Invocation {
    pub fn new(program: PathBuf, args: Vec<OsString>) -> Invocation {
        Invocation { program, args, stdin: None, dir: None, env: Vec::new() }
    }

    /// The command line as a person would type it (program by its file name).
    pub fn shown(&self) -> String {
        let prog = self.program.file_name().unwrap_or(self.program.as_os_str()).to_string_lossy();
        std::iter::once(prog.into_owned()).chain(self.args.iter().map(|a| a.to_string_lossy().into_owned())).collect::<Vec<_>>().join(" ")
    }
}

pub struct Workload {
    pub name: String,
    pub stresses: String,
    /// Err: skipped, and why (a program not installed, a set-up that failed).
    pub ready: Result<Invocation, String>,
}

/// The bundled workloads to run: every one by default (none when the user
/// gave a command and no --workload), else the named ones in table order.
pub fn select(names: &[String], has_command: bool) -> Result<Vec<&'static Bundled>> {
    if names.is_empty() {
        return Ok(if has_command { Vec::new() } else { BUNDLED.iter().collect() });
    }
    for name in names {
        if name != "all" && !BUNDLED.iter().any(|b| b.name == name) {
            bail!(
                "unknown workload `{}`; the bundled workloads are: {} (or `all`; `alloc8 bench --list` says what each does)",
                name,
                known()
            );
        }
    }
    let all = names.iter().any(|n| n == "all");
    Ok(BUNDLED.iter().filter(|b| all || names.iter().any(|n| n == b.name)).collect())
}

pub fn known() -> String {
    BUNDLED.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}

/// `--list`.
pub fn list() -> String {
    let width = BUNDLED.iter().map(|b| b.name.len()).max().unwrap_or(0);
    BUNDLED.iter().map(|b| format!("{:<width$}  {}\n", b.name, b.stresses, width = width)).collect()
}

/// The work N for a size: a tenth with --quick, times the test-only scale, at least 1.
pub fn work(bundled: &Bundled, quick: bool, scale: f64) -> u64 {
    let n = bundled.full as f64 * if quick { 0.1 } else { 1.0 } * scale;
    (n.round() as u64).max(1)
}

/// Compiles (cached) or sets up each workload; `dir` holds the real programs' inputs for this run.
pub fn prepare(selected: &[&Bundled], quick: bool, scale: f64, threads: usize, dir: &std::path::Path) -> Result<Vec<Workload>> {
    let mut out = Vec::new();
    for b in selected {
        let n = work(b, quick, scale);
        let ready = match &b.source {
            Source::C(text) => Ok(Invocation::new(compile::program(b.name, text)?, vec![n.to_string().into(), threads.to_string().into()])),
            Source::Real(real) => real_programs::prepare(*real, n, dir),
            Source::Trace(bytes) => bundled_trace(b.name, bytes, n, dir),
        };
        out.push(Workload { name: b.name.to_string(), stresses: b.stresses.to_string(), ready });
    }
    Ok(out)
}

/// The user's command after `--`: found now, refused now if no preload could reach it.
pub fn user_command(command: &[OsString]) -> Result<Workload> {
    let exe = program::resolve(&command[0]).map_err(|e| anyhow::anyhow!("{}", e))?;
    if let Some(why) = program::ignores_preload(&exe) {
        bail!("cannot benchmark {}: {}, so every contender would be glibc", exe.display(), why);
    }
    let inv = Invocation::new(exe, command[1..].to_vec());
    let name = std::iter::once(&command[0]).chain(&command[1..]).map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
    Ok(Workload { name, stresses: "your command".into(), ready: Ok(inv) })
}

/// A bundled trace: written out, its first `n` operations converted.
fn bundled_trace(name: &str, bytes: &[u8], n: u64, dir: &std::path::Path) -> Result<Invocation, String> {
    let trace = dir.join(format!("{}.a8t", name));
    let work = dir.join(name);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {}", work.display(), e))?;
    std::fs::write(&trace, bytes).map_err(|e| format!("cannot write {}: {}", trace.display(), e))?;
    let replayer = crate::replay::replayer().map_err(|e| format!("{:#}", e))?;
    crate::replay::workload::convert_prefix(&trace, &work, n).map_err(|e| format!("the bundled trace does not convert: {}", e))?;
    Ok(Invocation::new(replayer, vec![work.into()]))
}

/// A recorded trace as a workload: converted into `dir`, replayed by the
/// replayer (alloc8 replay's) under each contender like any other program.
pub fn trace(path: &std::path::Path, dir: &std::path::Path) -> Result<Workload> {
    let replayer = crate::replay::replayer()?;
    let w = crate::replay::workload::convert(path, dir).map_err(|e| anyhow::anyhow!("--trace {}: {}", path.display(), e))?;
    if let Some(why) = &w.cut_short {
        eprintln!("alloc8 bench: note: --trace {} is cut short ({}); replaying what it holds", path.display(), why);
    }
    let program = std::path::Path::new(&w.program).file_name().map_or(w.program.clone(), |f| f.to_string_lossy().into_owned());
    Ok(Workload {
        name: format!("trace:{}", program),
        stresses: format!("{}'s recorded allocations ({} operations, {} thread(s))", program, w.operations, w.threads),
        ready: Ok(Invocation::new(replayer, vec![dir.as_os_str().to_owned()])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_table_order_and_rejects_unknown_names() {
        let names = |v: Vec<&Bundled>| v.iter().map(|b| b.name).collect::<Vec<_>>();
        assert_eq!(select(&[], false).unwrap().len(), BUNDLED.len());
        assert!(select(&[], true).unwrap().is_empty());
        assert_eq!(names(select(&["realloc".into(), "pairs".into(), "pairs".into()], false).unwrap()), ["pairs", "realloc"]);
        assert_eq!(select(&["all".into()], true).unwrap().len(), BUNDLED.len());
        let err = select(&["nope".into()], false).err().unwrap().to_string();
        assert!(err.contains("`nope`") && err.contains("pairs, mixed"), "{}", err);
    }

    #[test]
    fn quick_is_a_tenth_and_never_zero() {
        let pairs = &BUNDLED[0];
        assert_eq!(work(pairs, false, 1.0), pairs.full);
        assert_eq!(work(pairs, true, 1.0), pairs.full / 10);
        assert_eq!(work(pairs, true, 1e-12), 1);
    }
}
