//! The audit's result: one serde structure for `--json`, and the compact
//! table people read.

use super::elf::ElfFacts;
use super::families::FamilyReport;
use super::hazards::Hazard;
use super::library::Format;
use super::mode::{Detected, PrefixedFamily};
use super::pe::PeFacts;
use super::verdict::Verdict;
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub path: String,
    pub format: Format,
    pub arch: String,
    /// A static archive rather than a shared library.
    pub archive: bool,
    /// How the audit assumed the library is loaded (`check --dlopen`).
    pub loading: super::Loading,
    pub mode: Detected,
    /// Every `<prefix>_malloc` family it exports (an interposer may have one too).
    pub prefixed_families: Vec<PrefixedFamily>,
    pub families: Vec<FamilyReport>,
    pub hazards: Vec<Hazard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf: Option<ElfFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe: Option<PeFacts>,
    pub min_glibc: Option<String>,
    pub verdict: Verdict,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.path);
        let soname = self.elf.as_ref().and_then(|e| e.soname.as_deref()).map(|s| format!(" {}", s)).unwrap_or_default();
        let kind = if self.archive { " static archive" } else { "" };
        let _ = writeln!(out, "  {} {}{}{}: {}", self.format.name(), self.arch, kind, soname, self.mode.describe());
        if self.loading == super::Loading::Dlopen {
            let _ = writeln!(out, "  judged as loaded with dlopen (--dlopen), not at start-up");
        }
        if let Some(pe) = &self.pe {
            match pe.crt_summary() {
                Some(crt) => {
                    let _ = writeln!(out, "  uses the C runtime {}", crt);
                }
                None => {
                    let _ = writeln!(out, "  imports no C runtime");
                }
            }
            if pe.alloc8_redirect && self.mode == Detected::Interposer {
                let _ = writeln!(out, "  an alloc8 redirect DLL: once loaded it hooks the allocator of every C runtime in the process");
            } else if self.mode == Detected::Interposer {
                let _ = writeln!(
                    out,
                    "  (on Windows exporting malloc replaces nothing by itself: a DLL takes the CRT over by hooking it, as alloc8's do)"
                );
            }
        }
        let others: Vec<String> = self
            .prefixed_families
            .iter()
            .filter(|p| p.prefix != self.mode.prefix())
            .map(|p| format!("{}_ ({}/{})", p.prefix, p.exported, p.of))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(out, "  also exports the prefixed famil{} {}", if others.len() == 1 { "y" } else { "ies" }, others.join(", "));
        }
        if !self.families.is_empty() {
            let _ = writeln!(out, "\n  {:<22} {:>5}  gaps", "family", "have");
            for f in &self.families {
                let have = format!("{}/{}", f.present.len().min(f.expected), f.expected);
                let findings = f.findings();
                if findings.is_empty() {
                    let _ = writeln!(out, "  {:<22} {:>5}  -", f.title, have);
                }
                for (i, finding) in findings.iter().enumerate() {
                    let (title, have) = if i == 0 { (f.title, have.as_str()) } else { ("", "") };
                    let _ = writeln!(
                        out,
                        "  {:<22} {:>5}  {} {}: {}",
                        title,
                        have,
                        finding.severity.label(),
                        finding.names.join(", "),
                        finding.text()
                    );
                }
            }
        }
        if !self.hazards.is_empty() {
            let _ = writeln!(out, "\n  hazards");
            for h in &self.hazards {
                let _ = writeln!(out, "  {:<8} {}", h.severity.label(), h.detail);
            }
        }
        let _ = writeln!(out, "\nverdict: {}", self.verdict.summary);
        out
    }
}
