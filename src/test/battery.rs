//! The contract batteries: conformance.c (every function of the C family,
//! errno, alignment, overflow, usable size, glibc's rules), one child per
//! section so a crash in one hides none of the others; and cxx_stress.cpp
//! (the 20 C++ operators, new_handler, bad_alloc, 8 threads, fork).

use super::child::{self, End, Launch, Outcome};
use super::gaps::Gaps;
use super::programs;
use super::report::{Family, FamilyResult, Finding};
use super::Budget;
use alloc8::testing::Rule;
use anyhow::Result;
use std::time::Duration;

const SECTION_LIMIT: Duration = Duration::from_secs(20);
const CXX_LIMIT: Duration = Duration::from_secs(60);
/// Operations per thread in cxx_stress (a heap making a system call per block must finish too).
const CXX_OPS: &str = "20000";

/// The functions each conformance section calls, to name a gap that explains a failure.
fn section_calls(section: &str) -> &'static [&'static str] {
    match section {
        "free" => &["free", "memalign", "calloc"],
        "calloc" => &["calloc"],
        "realloc" => &["realloc", "malloc_usable_size"],
        "reallocarray" => &["reallocarray", "realloc"],
        "posix_memalign" => &["posix_memalign"],
        "aligned_alloc" => &["aligned_alloc"],
        "memalign" => &["memalign"],
        "valloc_pvalloc" => &["valloc", "pvalloc", "malloc_usable_size"],
        "usable_size" | "interleaved" => {
            &["malloc_usable_size", "calloc", "realloc", "memalign", "aligned_alloc", "posix_memalign", "valloc", "pvalloc"]
        }
        "cfree" => &["cfree"],
        "huge_sizes" => &["malloc", "calloc", "memalign", "realloc", "malloc_usable_size"],
        "unbackable" => &["malloc", "calloc", "memalign", "posix_memalign", "realloc"],
        _ => &["malloc", "free"],
    }
}

const CXX_CALLS: &[&str] = &[
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
];

pub fn contract(launch: &Launch, gaps: &Gaps, budget: &Budget) -> Result<FamilyResult> {
    let mut result = FamilyResult::new(Family::Contract);
    let exe = programs::CONFORMANCE.executable()?;
    let list_limit = Duration::from_secs(10);
    let list = child::run(launch, &exe, &["--list".to_string()], list_limit)?;
    if list.end != End::Exited(0) {
        result.summary = "could not list its sections".into();
        result.fail(ended_badly(&list, "`conformance --list` (a program that only prints its section names)", Some(list_limit)));
        return Ok(result);
    }
    let sections: Vec<String> = list.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    let (mut checks, mut ran) = (0u64, 0usize);
    for section in &sections {
        let limit = match budget.limit(SECTION_LIMIT) {
            Some(l) => l,
            None => {
                result.notes.push(format!("the time budget ran out before section {}", section));
                break;
            }
        };
        let out = child::run(launch, &exe, std::slice::from_ref(section), limit)?;
        ran += 1;
        checks += count_checks(&out.stdout, "conformance: ");
        // A section this machine cannot run says why ("NOTE: huge_sizes skipped: ...").
        result.notes.extend(out.stdout.lines().filter_map(|l| l.strip_prefix("NOTE: ")).map(str::to_string));
        let gap = gaps.explain(section_calls(section));
        match out.end {
            End::Exited(0) => {}
            End::Exited(1) if out.stdout.contains("FAIL: ") => {
                for mut f in fail_lines(&out.stdout, &format!("section {}", section)) {
                    f.known_gap = gap.clone();
                    result.fail(f);
                }
            }
            _ => {
                let mut f = ended_badly(&out, &format!("conformance section `{}`", section), Some(limit));
                f.known_gap = gap;
                result.fail(f);
            }
        }
    }
    result.summary = format!("{} of {} sections, {} checks", ran, sections.len(), checks);
    Ok(result)
}

pub fn cxx(launch: &Launch, gaps: &Gaps, budget: &Budget) -> Result<FamilyResult> {
    let mut result = FamilyResult::new(Family::Cxx);
    let exe = programs::CXX_STRESS.executable()?;
    let limit = match budget.limit(CXX_LIMIT) {
        Some(l) => l,
        None => {
            result.status = super::report::Status::NotRun;
            return Ok(result);
        }
    };
    // An alloc8 shim writes its crash line (signal, faulting instruction,
    // the thread's last heap operations) to the child's report (out.shim),
    // as under `alloc8 run`.
    let out = child::run(launch, &exe, &[CXX_OPS.to_string()], limit)?;
    let checks = count_checks(&out.stdout, "cxx_stress: ");
    result.summary = match (checks, out.end) {
        (0, End::Signaled(sig)) => format!("killed by {} before its first check", child::signal_name(sig)),
        (0, End::TimedOut) => "stopped at the time limit before its first check".to_string(),
        (0, End::Exited(code)) if code != 0 => format!("exited with status {} before its first check", code),
        _ => format!("{} checks, 8 threads x {} operations, 20 forks", checks, CXX_OPS),
    };
    let gap = gaps.explain(CXX_CALLS);
    match out.end {
        End::Exited(0) => {}
        End::Exited(1) if out.stdout.contains("FAIL: ") => {
            for mut f in fail_lines(&out.stdout, "cxx_stress") {
                f.known_gap = gap.clone();
                result.fail(f);
            }
        }
        _ => {
            let mut f = ended_badly(&out, "cxx_stress", Some(limit));
            f.detail.push_str(LOCKING);
            f.known_gap = gap;
            if let End::Signaled(_) = out.end {
                f.detail.push_str(&crash_diagnostics(&out.shim, launch.lib));
            }
            result.fail(f);
        }
    }
    Ok(result)
}

/// Where a crash or corruption seen only with threads or fork points.
pub const LOCKING: &str = "; it runs 8 threads and forks: does malloc/free hold the heap's lock, and lock() take it across fork?";
/// What the shim said about the crash, as `alloc8 run` prints it (empty
/// when the library is not an alloc8 shim, or the crash came too early).
fn crash_diagnostics(rows: &[crate::run::report::Process], lib: &std::path::Path) -> String {
    let mut rows = rows.to_vec();
    crate::run::crash::locate_crashes(&mut rows);
    let said = crate::run::crash::text(&rows, lib);
    if said.trim().is_empty() {
        String::new()
    } else {
        // Under the finding's `found:` line, as `alloc8 run` prints it.
        said.trim_end().lines().map(|l| format!("\n             {}", l)).collect()
    }
}

/// "conformance: 154 checks, 0 failed" -> 154.
fn count_checks(stdout: &str, prefix: &str) -> u64 {
    stdout.lines().filter_map(|l| l.strip_prefix(prefix)).filter_map(|l| l.split(' ').next()?.parse::<u64>().ok()).sum()
}

/// Rules of the battery that are glibc's behaviour, not C's or POSIX's: a
/// replacement may differ, and a program written for glibc may not expect it.
fn glibc_behaviour(rule: &str) -> Option<&'static str> {
    match rule {
        "realloc(p, 0) frees p and returns NULL" => {
            Some("glibc's own behaviour: C17 leaves realloc(p, 0) to the implementation (C23 makes it undefined)")
        }
        "memalign rounds alignment up to a power of two" => {
            Some("glibc's own behaviour: memalign is in neither C nor POSIX, and glibc rounds a non-power-of-two alignment up")
        }
        "requests the machine cannot back fail with NULL + ENOMEM" | "requests the machine cannot back leave resident memory unchanged" => {
            Some(
                "glibc's behaviour under Linux's default overcommit heuristic (vm.overcommit_memory=0): the kernel refuses one \
                 mapping larger than RAM + swap, so malloc returns NULL; a heap that maps with MAP_NORESERVE serves it, and the \
                 program that trusts it is killed by the OOM killer when it touches the memory",
            )
        }
        _ => None,
    }
}

/// One finding per rule the battery names, with its first failure and how many there were.
fn fail_lines(stdout: &str, what: &str) -> Vec<Finding> {
    let mut findings: Vec<(String, String, usize)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("FAIL: ") else { continue };
        // "FAIL: <rule> -- <detail>": a rule's name may hold ": " ("aligned blocks: realloc and free").
        let Some((rule, detail)) = rest.split_once(" -- ") else { continue };
        let more = detail.strip_suffix(" more failures not shown").and_then(|n| n.parse::<usize>().ok());
        match findings.iter_mut().find(|f| f.0 == rule) {
            Some(f) => f.2 += more.unwrap_or(1),
            None => findings.push((rule.to_string(), detail.to_string(), more.unwrap_or(1))),
        }
    }
    findings
        .into_iter()
        .map(|(rule, detail, n)| {
            let mut f = Finding::new(
                Rule::Contract,
                format!("{}{} ({})", detail, if n > 1 { format!(" (and {} more)", n - 1) } else { String::new() }, what),
            );
            f.glibc_behaviour = glibc_behaviour(&rule);
            f.rule_text = rule;
            f
        })
        .collect()
}

/// A battery program that crashed, hung or exited without its summary.
fn ended_badly(out: &Outcome, what: &str, limit: Option<Duration>) -> Finding {
    let fails: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("FAIL: ")).take(3).collect();
    let before = if fails.is_empty() { String::new() } else { format!("; its last failures: {}", fails.join(" | ")) };
    // conformance.c says where it was when a signal came ("CRASH: in free(NULL)").
    let at = out.stdout.lines().rev().find_map(|l| l.strip_prefix("CRASH: ")).map(|w| format!(" {}", w)).unwrap_or_default();
    match out.end {
        End::Signaled(sig) => Finding::new(Rule::Crash, format!("{} was killed by {}{}{}", what, child::killer(out, sig), at, before)),
        End::TimedOut => {
            Finding::new(Rule::Hang, format!("{} did not finish in {:.0} s{}", what, limit.unwrap_or_default().as_secs_f64(), before))
        }
        End::Exited(code) => {
            let last = out.stderr.lines().last().unwrap_or("").trim();
            let said = if last.is_empty() { String::new() } else { format!(" (its last words: {})", last) };
            Finding::new(Rule::Crash, format!("{} exited with status {} without finishing{}{}", what, code, said, before))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_finding_per_rule_with_every_failure_counted() {
        let out = "FAIL: calloc zeroes -- calloc(7, 1): byte 3 is 0xa5\n\
                   FAIL: calloc zeroes -- calloc(16, 1): byte 0 is 0xa5\n\
                   FAIL: realloc(p, 0) frees p and returns NULL -- realloc(malloc(1), 0) = 0x10\n\
                   FAIL: calloc zeroes -- 12 more failures not shown\n\
                   conformance: 154 checks, 15 failed\n";
        let found = fail_lines(out, "section calloc");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].rule_text, "calloc zeroes");
        assert_eq!(found[0].detail, "calloc(7, 1): byte 3 is 0xa5 (and 13 more) (section calloc)");
        assert_eq!(found[0].glibc_behaviour, None);
        assert!(found[1].glibc_behaviour.unwrap().contains("C17"));
        assert_eq!(count_checks(out, "conformance: "), 154);
    }

    #[test]
    fn a_rule_name_with_a_colon_is_kept_whole() {
        let found = fail_lines("FAIL: aligned blocks: realloc and free -- round 1: 3 blocks corrupted\n", "section interleaved");
        assert_eq!(found[0].rule_text, "aligned blocks: realloc and free");
        assert_eq!(found[0].detail, "round 1: 3 blocks corrupted (section interleaved)");
    }
}
