//! Severities, and the verdict line and exit status they add up to.

use super::families::FamilyReport;
use super::hazards::Hazard;
use super::mode::Detected;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth knowing; nothing goes wrong because of it.
    Info,
    /// Goes wrong only in some programs or setups.
    Warning,
    /// Goes wrong: a program that reaches it corrupts its heap or crashes.
    Problem,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Problem => "PROBLEM",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub sound: bool,
    pub problems: usize,
    pub warnings: usize,
    pub summary: String,
}

impl Verdict {
    /// 0 sound, 1 problems found (2, could not read, never gets this far).
    pub fn exit_code(&self) -> u8 {
        if self.sound {
            0
        } else {
            1
        }
    }
}

pub fn decide(detected: &Detected, families: &[FamilyReport], hazards: &[Hazard]) -> Verdict {
    let severities =
        || families.iter().flat_map(|f| f.findings().into_iter().map(|g| g.severity)).chain(hazards.iter().map(|h| h.severity));
    let mut problems = severities().filter(|s| *s == Severity::Problem).count();
    let warnings = severities().filter(|s| *s == Severity::Warning).count();
    let with_warnings = |s: String| match warnings {
        0 => s,
        1 => format!("{} (1 warning)", s),
        n => format!("{} ({} warnings)", s, n),
    };
    let summary = match detected {
        Detected::NotAllocator => {
            problems += 1;
            "not an allocator: it exports neither malloc & co. nor a <prefix>_malloc family".to_string()
        }
        Detected::CLibrary => "the C library itself: the allocator replacements override, not a replacement".to_string(),
        Detected::CxxRuntime => {
            "the C++ runtime itself: its operator new and delete call malloc, which replacements override; not a replacement".to_string()
        }
        _ if problems > 0 => format!(
            "not a sound malloc replacement: {} problem{}{}",
            problems,
            if problems == 1 { "" } else { "s" },
            match warnings {
                0 => String::new(),
                n => format!(", {} warning{}", n, if n == 1 { "" } else { "s" }),
            }
        ),
        Detected::Prefixed { prefix } => with_warnings(format!("sound prefixed allocator ({}_malloc & co.)", prefix)),
        Detected::Interposer => with_warnings("sound malloc replacement".to_string()),
    };
    Verdict { sound: problems == 0, problems, warnings, summary }
}
