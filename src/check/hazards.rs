//! Hazards: properties of the binary, beyond its list of names, that make a
//! malloc replacement fail in some processes, and the facts (glibc floor,
//! NEEDED libraries) an author wants to see before shipping.

use super::elf::ElfFacts;
use super::library::Library;
use super::mode::Detected;
use super::tls_callers;
use super::verdict::Severity;
use super::Loading;
use crate::contract;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HazardKind {
    /// Thread-locals reached through `__tls_get_addr`.
    GeneralDynamicTls,
    /// It imports an allocation function it also exports.
    ImportsOwnExports,
    /// An interposer's allocation functions carry a version of its own,
    /// which programs (asking for glibc's) never bind to.
    VersionedExports,
    /// Its own calls to its allocation functions go through the dynamic
    /// linker, without -Bsymbolic.
    UnboundSelfCalls,
    /// The newest glibc symbol version it needs.
    GlibcVersion,
    /// DT_NEEDED.
    Needed,
    /// Mach-O `__DATA,__interpose`.
    InterposeSection,
    /// The functions a Mach-O's interpose pairs replace.
    InterposePairs,
    /// Interpose pairs whose original is the dylib's own definition: dyld drops them.
    DroppedInterposePairs,
    /// Interpose pairs that could not be read.
    UnreadInterposePairs,
    /// Strong undefined symbols no library it loads defines (loadable.rs).
    UndefinedSymbols,
    /// NEEDED libraries not on the search path.
    MissingLibraries,
    /// Symbol versions the library found does not define.
    MissingVersions,
    /// Built for another architecture: loading was not checked.
    LoadNotChecked,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hazard {
    pub kind: HazardKind,
    pub severity: Severity,
    pub detail: String,
    pub names: Vec<String>,
}

pub fn find(lib: &Library, detected: &Detected, loading: Loading) -> Vec<Hazard> {
    let mut out = Vec::new();
    // The names that make this library an allocator, as it exports them.
    let allocation: BTreeSet<String> = match detected.mode() {
        Some(mode) if !detected.is_system() => contract::checked(lib.format.platform(), mode)
            .filter(|e| !e.family.is_hook())
            .map(|e| contract::exported_name(e, mode, detected.prefix()))
            .collect(),
        _ => BTreeSet::new(),
    };

    let own: Vec<String> = lib.defined_and_imported().filter(|n| allocation.contains(*n)).cloned().collect();
    if !own.is_empty() {
        let elf = lib.elf.as_ref();
        // Under a version of its own, the export cannot answer the import
        // (`malloc@GLIBC_2.2.5` binds glibc's): a deliberate forward to
        // another heap. Unversioned, the import can bind to the export itself.
        let (self_bindable, forwarded): (Vec<String>, Vec<String>) =
            own.iter().cloned().partition(|n| elf.map_or(false, |e| !e.versioned_exports.contains_key(n)));
        let from = |n: &String| match elf.and_then(|e| e.versioned_imports.get(n)) {
            Some(v) => format!("{}@{}", n, v),
            None => n.clone(),
        };
        if !self_bindable.is_empty() {
            out.push(Hazard {
                kind: HazardKind::ImportsOwnExports,
                severity: Severity::Problem,
                detail: format!(
                    "imports {} while exporting {}: the import can bind to this library's own definition (endless recursion) or to another allocator's (mixed heaps)",
                    self_bindable.iter().map(from).collect::<Vec<_>>().join(", "),
                    if self_bindable.len() == 1 { "it" } else { "them" }
                ),
                names: self_bindable,
            });
        }
        if !forwarded.is_empty() {
            out.push(Hazard {
                kind: HazardKind::ImportsOwnExports,
                severity: Severity::Warning,
                detail: format!(
                    "imports {} while exporting {} too: some calls go to another library's heap, and this library's free must recognise those blocks",
                    forwarded.iter().map(from).collect::<Vec<_>>().join(", "),
                    if forwarded.len() == 1 { "it" } else { "them" }
                ),
                names: forwarded,
            });
        }
    }

    if let (Some(elf), Detected::Interposer) = (&lib.elf, detected) {
        let versioned: Vec<String> = allocation
            .iter()
            .filter_map(|n| elf.versioned_exports.get(n).filter(|v| !v.starts_with("GLIBC_")).map(|v| format!("{}@@{}", n, v)))
            .collect();
        if !versioned.is_empty() {
            out.push(Hazard {
                kind: HazardKind::VersionedExports,
                severity: Severity::Problem,
                detail: format!(
                    "exports {} under a version of its own: programs ask for glibc's version (malloc@GLIBC_2.2.5) and bind to glibc's, never to these",
                    versioned.join(", ")
                ),
                names: versioned,
            });
        }
    }

    if let Some(elf) = &lib.elf {
        if !allocation.is_empty() {
            out.extend(general_dynamic_tls(elf, detected, loading));
        }
        let unbound: Vec<String> = elf.self_referenced.iter().filter(|n| allocation.contains(*n)).cloned().collect();
        if !elf.symbolic && !unbound.is_empty() {
            out.push(Hazard {
                kind: HazardKind::UnboundSelfCalls,
                severity: Severity::Warning,
                detail: format!(
                    "its own calls to {} go through the dynamic linker (no -Bsymbolic): they reach the first definition in the process, \
                     another allocator's when this library is not first (dlopen, or loaded after another malloc)",
                    unbound.join(", ")
                ),
                names: unbound,
            });
        }
        if let Some(v) = elf.min_glibc() {
            out.push(Hazard {
                kind: HazardKind::GlibcVersion,
                severity: Severity::Info,
                detail: format!("needs glibc {} or newer", v),
                names: vec![format!("GLIBC_{}", v)],
            });
        }
        if !elf.needed.is_empty() {
            out.push(Hazard {
                kind: HazardKind::Needed,
                severity: Severity::Info,
                detail: format!("loads {}", elf.needed.join(", ")),
                names: elf.needed.clone(),
            });
        }
    }
    if lib.macho.as_ref().map_or(false, |m| m.interpose_section) {
        out.push(Hazard {
            kind: HazardKind::InterposeSection,
            severity: Severity::Info,
            detail: "has a __DATA,__interpose section: dyld replaces the functions it pairs (DYLD_INSERT_LIBRARIES)".to_string(),
            names: Vec::new(),
        });
    }
    if let Some(m) = &lib.macho {
        out.extend(super::macho_interpose::hazards(&m.interpose));
    }
    // Worst first; the order found is kept among equals.
    out.sort_by(|a, b| b.severity.cmp(&a.severity));
    out
}

/// Thread-locals reached through `__tls_get_addr`. When the calls can be
/// attributed (tls_callers), those of Rust's standard library alone (every
/// Rust shim carries them: panics, thread-exit destructors) cost nothing in
/// a library loaded at start-up (preloaded or linked, as an allocator is:
/// ld.so places them in each thread's static TLS block and a first access
/// allocates nothing); loaded with dlopen, each thread's block is allocated
/// with malloc at its first access. Any other function's are the warning, by
/// name, however the library is loaded: after the program dlopens libraries
/// with thread-locals, `__tls_get_addr` grows its table with malloc, a
/// recursion when the allocation path is what reads one. A prefixed
/// library's are information: its malloc is not the process's, and a library
/// that may be `dlopen`ed needs them.
fn general_dynamic_tls(elf: &ElfFacts, detected: &Detected, loading: Loading) -> Option<Hazard> {
    if elf.dtpmod_relocations == 0 && !elf.imports_tls_get_addr {
        return None;
    }
    let risk = "a thread-local reached through __tls_get_addr can call malloc (ld.so grows its TLS table with malloc after a dlopen), \
                recursion if the allocation path touches one";
    let relocations = format!("{} DTPMOD relocation{}", elf.dtpmod_relocations, if elf.dtpmod_relocations == 1 { "" } else { "s" });
    let hazard = |severity, detail: String, names| Some(Hazard { kind: HazardKind::GeneralDynamicTls, severity, detail, names });
    if matches!(detected, Detected::Prefixed { .. }) {
        return hazard(
            Severity::Info,
            format!("general-dynamic TLS ({}): safe to dlopen, and a prefixed malloc is not the one __tls_get_addr calls", relocations),
            elf.tls_callers.iter().flatten().map(|n| tls_callers::readable(n)).collect(),
        );
    }
    let callers = match &elf.tls_callers {
        Some(callers) => callers,
        None => {
            return hazard(
                Severity::Warning,
                format!(
                    "general-dynamic TLS ({}{}): {}; use initial-exec TLS there",
                    relocations,
                    if elf.imports_tls_get_addr { ", imports __tls_get_addr" } else { "" },
                    risk
                ),
                if elf.imports_tls_get_addr { vec!["__tls_get_addr".to_string()] } else { Vec::new() },
            )
        }
    };
    let (std, own): (Vec<&String>, Vec<&String>) = callers.iter().partition(|n| tls_callers::is_rust_std(n));
    let mut names: Vec<String> = (if own.is_empty() { &std } else { &own }).iter().map(|n| tls_callers::readable(n)).collect();
    names.dedup();
    const SHOWN: usize = 6;
    let listed =
        if names.len() > SHOWN { format!("{}, and {} more", names[..SHOWN].join(", "), names.len() - SHOWN) } else { names.join(", ") };
    if !own.is_empty() {
        return hazard(
            Severity::Warning,
            format!("general-dynamic TLS ({}) in {}: {}; use initial-exec TLS there", relocations, listed, risk),
            names,
        );
    }
    match loading {
        Loading::AtStart => hazard(
            Severity::Info,
            format!(
                "general-dynamic TLS only in Rust's standard library ({}; called from {}): its panic and thread-exit machinery, \
                 which an allocation path that does not call into std never reaches; preloaded or linked, as an allocator is, \
                 these thread-locals sit in each thread's static TLS block and a first access allocates nothing \
                 (`check --dlopen` judges it as loaded with dlopen)",
                relocations, listed
            ),
            names,
        ),
        Loading::Dlopen => hazard(
            Severity::Warning,
            format!(
                "general-dynamic TLS in Rust's standard library ({}; called from {}): loaded with dlopen, its thread-locals are \
                 allocated at each thread's first access, by __tls_get_addr calling the process's malloc from inside this \
                 library's functions when they touch one: wrong wherever malloc must not run (a signal handler, the child of a \
                 threaded program's fork); use initial-exec TLS there, or load the library at start-up",
                relocations, listed
            ),
            names,
        ),
    }
}
