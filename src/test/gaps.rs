//! What the library lacks, from the same audit as `alloc8 check`: a call to a
//! missing function is served by glibc's or libstdc++'s own, and the block
//! then reaches the library's free. The contract battery still calls them
//! (so the gap shows as a finding, labelled as predicted); the random
//! phases leave them out, so they can test the rest.

use crate::check;
use alloc8::testing::Kind;
use std::path::Path;

#[derive(Default)]
pub struct Gaps {
    pub missing: Vec<String>,
}

impl Gaps {
    pub fn of(lib: &Path) -> Gaps {
        let reports = match check::check(lib, check::Loading::AtStart) {
            Ok(r) => r,
            Err(_) => return Gaps::default(),
        };
        let mut missing = Vec::new();
        for report in &reports {
            if report.mode.is_system() {
                continue;
            }
            for family in report.families.iter().filter(|f| !f.family.is_hook()) {
                // glibc's internal names (__libc_malloc & co.) are never called by programs.
                for gap in family.gaps.iter().filter(|g| g.handled_by.is_none() && !g.name.starts_with("__")) {
                    if !missing.contains(&gap.name) {
                        missing.push(gap.name.clone());
                    }
                }
            }
        }
        Gaps { missing }
    }

    pub fn lacks(&self, name: &str) -> bool {
        self.missing.iter().any(|m| m == name)
    }

    /// Why a finding in code that calls `functions` was to be expected, if it was.
    pub fn explain(&self, functions: &[&str]) -> Option<String> {
        let lacking: Vec<&str> = functions.iter().copied().filter(|f| self.lacks(f)).collect();
        if lacking.is_empty() {
            return None;
        }
        let owner = if lacking[0].starts_with("_Z") { "libstdc++" } else { "glibc" };
        Some(format!(
            "the library does not export {} (`alloc8 check` reports it): {}'s own serves the call, and the block then \
             reaches the library's free, which did not allocate it",
            lacking.join(", "),
            owner
        ))
    }

    /// The trace operations whose functions the library has.
    pub fn model_kinds(&self) -> Vec<Kind> {
        alloc8::testing::ops::KINDS.iter().copied().filter(|k| functions(*k).iter().all(|f| !self.lacks(f))).collect()
    }

    pub fn has_usable_size(&self) -> bool {
        !self.lacks("malloc_usable_size")
    }
}

/// The library functions an operation calls.
pub fn functions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Malloc => &["malloc"],
        Kind::Calloc => &["calloc"],
        Kind::Realloc => &["realloc"],
        Kind::Free => &["free"],
        Kind::Memalign => &["memalign"],
        Kind::PosixMemalign => &["posix_memalign"],
        Kind::AlignedAlloc => &["aligned_alloc"],
        Kind::Valloc => &["valloc"],
        Kind::Pvalloc => &["pvalloc"],
        Kind::New => &["_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZdlPv", "_ZdaPv"],
        Kind::NewAligned => &["_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t"],
        Kind::Usable => &["malloc_usable_size"],
        Kind::Check => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_function_explains_and_leaves_the_trace() {
        let gaps = Gaps { missing: vec!["pvalloc".into(), "cfree".into()] };
        assert!(gaps.explain(&["malloc", "free"]).is_none());
        let why = gaps.explain(&["valloc", "pvalloc"]).unwrap();
        assert!(why.contains("does not export pvalloc") && why.contains("glibc's own"), "{}", why);
        let kinds = gaps.model_kinds();
        assert!(!kinds.contains(&Kind::Pvalloc) && kinds.contains(&Kind::Valloc) && kinds.contains(&Kind::Malloc));
        assert!(gaps.has_usable_size());
        let cxx = Gaps { missing: vec!["_ZnwmSt11align_val_t".into()] };
        assert!(cxx.explain(&["_ZnwmSt11align_val_t"]).unwrap().contains("libstdc++"));
        assert!(!cxx.model_kinds().contains(&Kind::NewAligned));
    }
}
