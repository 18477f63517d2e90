//! Reading a library's symbol table and judging it against the contract:
//! `alloc8 check` on any library, and `build` on every artifact it makes.
//!
//! One file per concern: input (bad input; the file mapped, never read
//! whole), library (format-neutral facts) with elf/macho/pe (the readers)
//! and universal (a fat Mach-O's slices, each once), mode (what kind of allocator), families
//! and hazards (the findings), loadable with ld_path (whether ld.so can
//! load it here), verdict (severities, exit status), report
//! (JSON and text).

pub mod archive;
pub mod demangle;
pub mod elf;
pub mod families;
pub mod hazards;
pub mod input;
pub mod ld_path;
pub mod library;
pub mod loadable;
pub mod macho;
pub mod macho_chained;
pub mod macho_interpose;
pub mod mode;
pub mod pe;
pub mod report;
pub mod tls_callers;
pub mod universal;
pub mod verdict;

pub use input::ReadError;
pub use library::Library;
pub use report::Report;

use std::path::Path;

/// How the library will be loaded: it decides what its thread-locals cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loading {
    /// Preloaded or linked: loaded before the program runs, as a malloc
    /// replacement must be to replace anything.
    AtStart,
    /// With dlopen, later (a plugin, or a library a plugin needs).
    Dlopen,
}

/// The whole audit of a library already read, judged as loaded at start-up.
pub fn audit(path: &Path, lib: &Library) -> Report {
    audit_loaded(path, lib, Loading::AtStart)
}

/// The whole audit of a library already read, for how it will be loaded.
pub fn audit_loaded(path: &Path, lib: &Library, loading: Loading) -> Report {
    let (detected, prefixed) = mode::detect(lib);
    let families = families::judge(lib, &detected);
    let mut hazards = hazards::find(lib, &detected, loading);
    // A library that cannot load is no allocator, whatever it exports.
    hazards.splice(0..0, loadable::hazards(path, lib));
    hazards.sort_by(|a, b| b.severity.cmp(&a.severity));
    let verdict = verdict::decide(&detected, &families, &hazards);
    Report {
        path: path.display().to_string(),
        format: lib.format,
        arch: lib.arch.clone(),
        archive: lib.archive,
        loading,
        mode: detected,
        prefixed_families: prefixed,
        families,
        hazards,
        min_glibc: lib.elf.as_ref().and_then(|e| e.min_glibc()),
        elf: lib.elf.clone(),
        pe: lib.pe.clone(),
        verdict,
    }
}

/// Reads and audits `path`: one report, or one per architecture of a
/// universal (fat) Mach-O.
pub fn check(path: &Path, loading: Loading) -> Result<Vec<Report>, ReadError> {
    let mut reports = Vec::new();
    for lib in Library::read_all(path)? {
        let report = audit_loaded(path, &lib, loading);
        // Any library may turn out not to be an allocator; an archive that is
        // none was most likely given by mistake.
        if lib.archive && report.mode == mode::Detected::NotAllocator {
            return Err(ReadError::Archive(path.to_path_buf()));
        }
        reports.push(report);
    }
    Ok(reports)
}
