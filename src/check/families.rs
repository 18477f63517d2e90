//! Per family of the contract: what the library exports (or, for hooks,
//! imports), what it lacks, and what each gap does to a program.
//!
//! A gap is not always a hole: when a replacement lacks, say, `_ZdlPvm`,
//! libstdc++'s own `_ZdlPvm` runs and calls `_ZdlPv` through the dynamic
//! linker, which reaches the replacement's. The contract table records
//! those routes (`Export::via`); a gap whose route ends in the library is
//! harmless, one that ends in the system's own heap is not.

use super::library::Library;
use super::mode::Detected;
use super::verdict::Severity;
use crate::contract::{self, Export, Family, Mode, Need, Platform};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct FamilyReport {
    pub family: Family,
    pub title: &'static str,
    /// Names found (exported; imported for hook families).
    pub present: Vec<String>,
    /// How many names the family has in this mode (hooks: 1, any one will do).
    pub expected: usize,
    pub gaps: Vec<Gap>,
}

impl FamilyReport {
    /// Gaps that share a severity and a consequence, worst first: one
    /// finding each (a family missing seven aliases has one problem, not seven).
    pub fn findings(&self) -> Vec<Finding<'_>> {
        let mut out: Vec<Finding> = Vec::new();
        for g in &self.gaps {
            let key = match &g.handled_by {
                Some(h) => format!("handled by {}, which forwards to this library's", h.owner),
                None => g.consequence.clone(),
            };
            match out.iter_mut().find(|f| f.severity == g.severity && f.key == key) {
                Some(f) => {
                    f.names.push(&g.name);
                    if let Some(h) = &g.handled_by {
                        if !f.reaches.contains(&h.reaches) {
                            f.reaches.push(h.reaches);
                        }
                    }
                }
                None => out.push(Finding {
                    severity: g.severity,
                    key,
                    names: vec![&g.name],
                    reaches: g.handled_by.iter().map(|h| h.reaches).collect(),
                }),
            }
        }
        out.sort_by(|a, b| b.severity.cmp(&a.severity));
        out
    }
}

pub struct Finding<'a> {
    pub severity: Severity,
    key: String,
    pub names: Vec<&'a str>,
    reaches: Vec<&'static str>,
}

impl Finding<'_> {
    pub fn text(&self) -> String {
        if self.reaches.is_empty() {
            self.key.clone()
        } else {
            format!("{} {}", self.key, self.reaches.join(", "))
        }
    }
}

/// Who serves a call the library lacks, and where that ends up.
#[derive(Clone, Debug, Serialize)]
pub struct Handler {
    /// glibc, libstdc++...
    pub owner: &'static str,
    /// This library's function the call reaches.
    pub reaches: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    /// The missing name (hooks: the alternatives, joined by " or ").
    pub name: String,
    pub need: Need,
    pub severity: Severity,
    pub consequence: String,
    /// Set when the system's own version forwards to this library.
    pub handled_by: Option<Handler>,
}

pub fn judge(lib: &Library, detected: &Detected) -> Vec<FamilyReport> {
    let mode = match detected.mode() {
        Some(m) => m,
        None => return Vec::new(),
    };
    let platform = lib.format.platform();
    let rows: Vec<&'static Export> = contract::checked(platform, mode).collect();
    Family::ALL
        .iter()
        .filter_map(|&family| {
            let members: Vec<&Export> = rows.iter().copied().filter(|e| e.family == family).collect();
            if members.is_empty() {
                return None;
            }
            let report = if family.is_hook() {
                hook_family(lib, detected, family, &members)
            } else {
                export_family(lib, detected, mode, platform, family, &members)
            };
            // The C library leaves C++ to libstdc++ and runs hooks itself,
            // the C++ runtime leaves C to the C library: not gaps.
            if detected.is_system() && report.present.is_empty() {
                return None;
            }
            Some(report)
        })
        .collect()
}

fn export_family(lib: &Library, detected: &Detected, mode: Mode, platform: Platform, family: Family, members: &[&Export]) -> FamilyReport {
    let mut present = Vec::new();
    let mut gaps = Vec::new();
    for e in members {
        let name = contract::exported_name(e, mode, detected.prefix());
        if lib.defined.contains(&name) {
            present.push(name);
            continue;
        }
        let mut handled_by = None;
        let (severity, consequence) = match detected {
            Detected::CLibrary => (Severity::Info, "the C library is the system allocator: nothing replaces it here".to_string()),
            Detected::CxxRuntime => (Severity::Info, "the C++ runtime's own operators call malloc: nothing replaces it here".to_string()),
            Detected::Prefixed { .. } => (
                match e.need {
                    Need::Required => Severity::Problem,
                    Need::Expected => Severity::Warning,
                    Need::Optional | Need::Seldom => Severity::Info,
                },
                if e.need == Need::Required {
                    format!("{} cannot be used without {}", contract::exported_name(members[0], mode, detected.prefix()), name)
                } else {
                    format!("programs written against the full {}_ API cannot link", detected.prefix())
                },
            ),
            _ => match route(lib, e, 0) {
                Some(end) => {
                    let owner = owner(e.name, platform);
                    handled_by = Some(Handler { owner, reaches: end });
                    (Severity::Info, format!("handled by {}'s own {}, which ends up in this library's {}", owner, e.name, end))
                }
                None => (
                    match e.need {
                        Need::Required | Need::Expected => Severity::Problem,
                        Need::Optional => Severity::Warning,
                        Need::Seldom => Severity::Info,
                    },
                    family.consequence().to_string(),
                ),
            },
        };
        gaps.push(Gap { name, need: e.need, severity, consequence, handled_by });
    }
    FamilyReport { family, title: family.title(), present, expected: members.len(), gaps }
}

/// Where a call to the missing `e` ends up: the name of this library's
/// function it reaches through the system's forwarding, if it does.
fn route(lib: &Library, e: &Export, depth: usize) -> Option<&'static str> {
    if e.via.is_empty() || depth > contract::EXPORTS.len() {
        return None;
    }
    // Every forward target must land in this library (libstdc++'s forms each call one).
    let mut end = None;
    for &target in e.via {
        if lib.defined.contains(target) {
            end = Some(target);
        } else {
            let next = contract::EXPORTS.iter().find(|x| x.name == target)?;
            end = Some(route(lib, next, depth + 1)?);
        }
    }
    end
}

/// Whose own version runs when a replacement lacks `name`.
fn owner(name: &str, platform: Platform) -> &'static str {
    match (name.starts_with("_Z"), platform) {
        (true, Platform::Macos) => "libc++",
        (true, _) => "libstdc++",
        (false, Platform::Linux) => "glibc",
        (false, Platform::Macos) => "libSystem",
        (false, Platform::Windows) => "the CRT",
    }
}

fn hook_family(lib: &Library, detected: &Detected, family: Family, members: &[&Export]) -> FamilyReport {
    let present: Vec<String> = members.iter().filter(|e| lib.imported.contains(e.name)).map(|e| e.name.to_string()).collect();
    let mut gaps = Vec::new();
    if present.is_empty() {
        let need = members[0].need;
        let (severity, consequence) = match (detected, need) {
            (Detected::CLibrary | Detected::CxxRuntime, _) => (Severity::Info, "the system's runtime runs these hooks itself".to_string()),
            (_, Need::Optional) => (Severity::Warning, family.consequence().to_string()),
            (_, Need::Seldom) => (Severity::Info, family.consequence().to_string()),
            _ => (Severity::Problem, family.consequence().to_string()),
        };
        let name = members.iter().map(|e| e.name).collect::<Vec<_>>().join(" or ");
        gaps.push(Gap { name, need, severity, consequence, handled_by: None });
    }
    FamilyReport { family, title: family.title(), present, expected: 1, gaps }
}
