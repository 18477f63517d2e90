//! What `alloc8 test` found, as data (`--json`) and as text: per family of
//! checks, whether it held, and the first violation of each with the rule it
//! breaks in words, what was running, the seed and a reproduction.

use alloc8::testing::Rule;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The families of checks, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The C contract battery: every function of the malloc family, errno, alignment, overflow, usable size, glibc's rules.
    Contract,
    /// The C++ battery: the 20 operators, new_handler, bad_alloc, threads and fork.
    Cxx,
    /// The seeded random trace against a shadow model of every live block.
    Model,
    /// The model on several threads, blocks handed between them.
    Threads,
    /// fork() while threads allocate.
    Fork,
    /// Freed memory comes back.
    Memory,
}

impl Family {
    pub const ALL: [Family; 6] = [Family::Contract, Family::Cxx, Family::Model, Family::Threads, Family::Fork, Family::Memory];

    pub fn name(self) -> &'static str {
        match self {
            Family::Contract => "contract",
            Family::Cxx => "cxx",
            Family::Model => "model",
            Family::Threads => "threads",
            Family::Fork => "fork",
            Family::Memory => "memory",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Family::Contract => "C contract battery",
            Family::Cxx => "C++ operators, threads and fork",
            Family::Model => "random trace against a shadow model",
            Family::Threads => "threads handing blocks to each other",
            Family::Fork => "fork while threads allocate",
            Family::Memory => "freed memory comes back",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// alloc8::testing's rule id (`overlap`, `crash`, ... or `contract`).
    pub rule: &'static str,
    /// The rule in words (for `contract`: the battery's own rule name).
    pub rule_text: String,
    pub detail: String,
    /// The operation that broke it, as a C call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The shortest failing sequence found, as C calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reproduction: Vec<String>,
    /// What the reproduction shows when it is not what was found (a crash
    /// shrunk to the overlap or overwrite behind it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproduction_shows: Option<String>,
    /// The file `alloc8 test --replay` runs again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// Set when a gap `alloc8 check` reports explains the finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_gap: Option<String>,
    /// Set when the rule is glibc's own behaviour rather than C's or POSIX's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc_behaviour: Option<&'static str>,
}

impl Finding {
    pub fn new(rule: Rule, detail: String) -> Finding {
        Finding {
            rule: rule.id(),
            rule_text: rule.text().to_string(),
            detail,
            operation: None,
            seed: None,
            reproduction: Vec::new(),
            reproduction_shows: None,
            replay: None,
            known_gap: None,
            glibc_behaviour: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    /// Left out with --only.
    Skipped,
    /// The time budget ran out before it could start.
    NotRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct FamilyResult {
    pub family: Family,
    pub status: Status,
    /// What ran: "14 sections, 13928 checks", "200000 operations, seeds 1-4".
    pub summary: String,
    pub seconds: f64,
    pub findings: Vec<Finding>,
    /// Things to know that are not violations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl FamilyResult {
    pub fn new(family: Family) -> FamilyResult {
        FamilyResult { family, status: Status::Passed, summary: String::new(), seconds: 0.0, findings: Vec::new(), notes: Vec::new() }
    }

    pub fn fail(&mut self, finding: Finding) {
        self.status = Status::Failed;
        self.findings.push(finding);
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TestReport {
    pub library: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap: Option<PathBuf>,
    pub seed: u64,
    /// Functions the library lacks (from `alloc8 check`); the random phases leave them out.
    pub gaps: Vec<String>,
    pub families: Vec<FamilyResult>,
    pub seconds: f64,
    pub exit_code: u8,
}

impl TestReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    /// Findings grouped by rule (its id and words), most severe group first;
    /// within a group, in the order found.
    fn grouped(&self) -> Vec<Vec<(Family, &Finding)>> {
        let mut groups: Vec<Vec<(Family, &Finding)>> = Vec::new();
        for f in &self.families {
            for x in &f.findings {
                match groups.iter_mut().find(|g| g[0].1.rule == x.rule && g[0].1.rule_text == x.rule_text) {
                    Some(g) => g.push((f.family, x)),
                    None => groups.push(vec![(f.family, x)]),
                }
            }
        }
        // A stable sort: equally severe rules stay in the order they were found.
        groups.sort_by_key(|g| severity(g[0].1));
        groups
    }

    /// `all`: every finding, not the first of each rule (`--verbose`).
    pub fn to_text(&self, all: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "alloc8 test: {} (seed {})", self.heap.as_ref().unwrap_or(&self.library).display(), self.seed);
        if !self.gaps.is_empty() {
            let _ = writeln!(out, "  gaps (alloc8 check): the library lacks {}; the random phases leave them out", self.gaps.join(", "));
        }
        for f in &self.families {
            let mark = match f.status {
                Status::Passed => "ok  ",
                Status::Failed => "FAIL",
                Status::Skipped => "skip",
                Status::NotRun => "----",
            };
            let _ = writeln!(out, "  {} {:<9} {} ({}, {:.1} s)", mark, f.family.name(), f.family.title(), f.summary, f.seconds);
            for n in &f.notes {
                let _ = writeln!(out, "         note: {}", n);
            }
        }
        // A list to act on: one group per rule, most severe first, each with
        // its count and first instance in full (`all`: every instance).
        let groups = self.grouped();
        if !groups.is_empty() {
            let total: usize = groups.iter().map(|g| g.len()).sum();
            out.push('\n');
            let _ = writeln!(
                out,
                "{} broken, {} finding{}, most severe first{}:",
                plural(groups.len(), "rule", "rules"),
                total,
                if total == 1 { "" } else { "s" },
                if all || total == groups.len() { "" } else { " (the first of each; --verbose lists every one)" }
            );
        }
        for (i, group) in groups.iter().enumerate() {
            let mut families: Vec<&str> = group.iter().map(|(f, _)| f.name()).collect();
            families.dedup();
            out.push('\n');
            let _ = writeln!(
                out,
                "{}. {} ({}, in {})",
                i + 1,
                group[0].1.rule_text,
                plural(group.len(), "finding", "findings"),
                families.join(", ")
            );
            let shown = if all { group.len() } else { 1 };
            for (family, x) in group.iter().take(shown) {
                write_finding(&mut out, *family, x);
            }
            if shown < group.len() {
                let _ = writeln!(out, "  ... {} more under this rule (--verbose lists them)", group.len() - shown);
            }
        }
        let failed: Vec<&str> = self.families.iter().filter(|f| f.status == Status::Failed).map(|f| f.family.name()).collect();
        let not_run: Vec<&str> = self.families.iter().filter(|f| f.status == Status::NotRun).map(|f| f.family.name()).collect();
        out.push('\n');
        if !failed.is_empty() {
            let _ = writeln!(out, "alloc8 test: rules broken in {} ({:.0} s)", failed.join(", "), self.seconds);
        } else if !not_run.is_empty() {
            let _ = writeln!(out, "alloc8 test: {} did not run: the time budget ran out ({:.0} s)", not_run.join(", "), self.seconds);
        } else {
            let _ = writeln!(out, "alloc8 test: every check holds ({:.0} s)", self.seconds);
        }
        out
    }
}

/// One finding in full: the rule in words, what was found, how to get it again.
fn write_finding(out: &mut String, family: Family, x: &Finding) {
    let _ = writeln!(out, "{}: {}", family.name(), x.rule_text);
    let _ = writeln!(out, "  rule:      {}", x.rule);
    let _ = writeln!(out, "  found:     {}", x.detail);
    if let Some(op) = &x.operation {
        let _ = writeln!(out, "  operation: {}", op);
    }
    if let Some(seed) = x.seed {
        let _ = writeln!(out, "  seed:      {}", seed);
    }
    if let Some(gap) = &x.known_gap {
        let _ = writeln!(out, "  known gap: {}", gap);
    }
    if let Some(why) = x.glibc_behaviour {
        let _ = writeln!(out, "  glibc:     {}", why);
    }
    if !x.reproduction.is_empty() {
        let _ = writeln!(out, "  shortest failing sequence ({} operations):", x.reproduction.len());
        for call in x.reproduction.iter().take(40) {
            let _ = writeln!(out, "    {}", call);
        }
        if x.reproduction.len() > 40 {
            let _ = writeln!(out, "    ... {} more (all in the replay file)", x.reproduction.len() - 40);
        }
        let _ = writeln!(out, "    (then every block still live is checked and freed)");
        if let Some(shows) = &x.reproduction_shows {
            let _ = writeln!(out, "    (it shows as {})", shows);
        }
    }
    if let Some(file) = &x.replay {
        let _ = writeln!(out, "  replay:    alloc8 test --replay {}", file.display());
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", n, if n == 1 { one } else { many })
}

/// 0 first: a crash or a hang (everything after it went unchecked), then
/// wrong memory (overlap, contents: a program's data is corrupted), then
/// alignment and sizes, then the rest, errno last. The battery's own rules
/// (`contract`) are placed by their words.
fn severity(x: &Finding) -> u8 {
    match x.rule {
        "crash" | "hang" | "fork-deadlock" | "fork-child" => 0,
        "overlap" | "contents" | "realloc-copy" | "calloc-zero" => 1,
        "alignment" | "usable-size" | "null-return" | "huge-request" => 2,
        "errno" => 4,
        "contract" => {
            let words = x.rule_text.to_ascii_lowercase();
            let has = |keys: &[&str]| keys.iter().any(|k| words.contains(k));
            if has(&["crash", "deadlock", "hang"]) {
                0
            } else if has(&["errno", "enomem", "einval"]) {
                4 // "malloc failure: NULL + ENOMEM": what is wrong is errno
            } else if has(&["overlap", "disjoint", "content", "intact", "zero", "corrupt", "broken", "many live", "aligned blocks"]) {
                1
            } else if has(&["align", "size", "null", "returns memory", "unique", "page"]) {
                2
            } else {
                3
            }
        }
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_rule_the_call_the_seed_and_the_replay() {
        let mut model = FamilyResult::new(Family::Model);
        let mut f = Finding::new(Rule::Overlap, "malloc(24) = 0x10: overlaps p3".into());
        f.operation = Some("#7: p5 = malloc(24)".into());
        f.seed = Some(42);
        f.reproduction = vec!["p3 = malloc(24)".into(), "p5 = malloc(24)".into()];
        f.replay = Some(PathBuf::from("/tmp/x.trace"));
        f.reproduction_shows = Some("contents in p5 = malloc(24): byte 3 changed".into());
        model.fail(f);
        let mut memory = FamilyResult::new(Family::Memory);
        memory.status = Status::NotRun;
        let report = TestReport {
            library: PathBuf::from("/lib/x.so"),
            heap: None,
            seed: 42,
            gaps: vec![],
            families: vec![model, memory],
            seconds: 3.0,
            exit_code: 1,
        };
        let text = report.to_text(false);
        for want in [
            "FAIL model",
            "model: a live block overlaps no other live block",
            "rule:      overlap",
            "operation: #7: p5 = malloc(24)",
            "seed:      42",
            "shortest failing sequence (2 operations)",
            "(it shows as contents in p5 = malloc(24): byte 3 changed)",
            "alloc8 test --replay /tmp/x.trace",
            "---- memory",
            "rules broken in model",
        ] {
            assert!(text.contains(want), "{:?} missing from:\n{}", want, text);
        }
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["families"][0]["findings"][0]["rule"], "overlap");
        assert_eq!(json["families"][1]["status"], "not_run");
    }

    #[test]
    fn findings_are_grouped_by_rule_most_severe_first_with_the_first_in_full() {
        let mut contract = FamilyResult::new(Family::Contract);
        let mut errno = Finding::new(Rule::Contract, "realloc(p, 2^62) = NULL, errno 0".into());
        errno.rule_text = "realloc failure: NULL + ENOMEM, p intact".into();
        contract.fail(errno);
        for n in 0..3 {
            let mut f = Finding::new(Rule::Contract, format!("memalign(512, {}) = 0x...08", n));
            f.rule_text = "memalign aligns".into();
            contract.fail(f);
        }
        let mut cxx = FamilyResult::new(Family::Cxx);
        cxx.fail(Finding::new(Rule::Crash, "cxx_stress was killed by SIGSEGV".into()));
        let report = TestReport {
            library: PathBuf::from("/lib/x.so"),
            heap: None,
            seed: 1,
            gaps: vec![],
            families: vec![contract, cxx],
            seconds: 3.0,
            exit_code: 1,
        };
        let text = report.to_text(false);
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{:?} missing from:\n{}", s, text));
        assert!(text.contains("3 rules broken, 5 findings, most severe first (the first of each; --verbose lists every one)"), "{}", text);
        assert!(
            at("1. the heap does not crash a correct program (1 finding, in cxx)") < at("2. memalign aligns (3 findings, in contract)")
        );
        assert!(at("2. memalign aligns") < at("3. realloc failure: NULL + ENOMEM, p intact (1 finding"), "alignment before errno");
        assert!(text.contains("memalign(512, 0)") && !text.contains("memalign(512, 1)"), "{}", text);
        assert!(text.contains("... 2 more under this rule (--verbose lists them)"));
        let all = report.to_text(true);
        assert!(all.contains("memalign(512, 1)") && all.contains("memalign(512, 2)") && !all.contains("more under this rule"), "{}", all);
    }
}
