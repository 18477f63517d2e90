//! Which kind of allocator library this is: one that replaces the process
//! allocator (exports `malloc` & co.), one that offers a `<prefix>_malloc`
//! family beside it, the C library or the C++ runtime itself, or none of these.

use super::library::Library;
use crate::contract::{self, Family, Mode, Need};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Detected {
    Interposer,
    Prefixed {
        prefix: String,
    },
    /// The system C library (it defines `__libc_start_main`): the allocator
    /// that replacements override.
    CLibrary,
    /// The C++ runtime (libstdc++, libc++): its operator new and delete
    /// call malloc, and a replacement overrides them.
    CxxRuntime,
    NotAllocator,
}

impl Detected {
    /// The contract mode whose rows apply.
    pub fn mode(&self) -> Option<Mode> {
        match self {
            Detected::Interposer | Detected::CLibrary | Detected::CxxRuntime => Some(Mode::Interpose),
            Detected::Prefixed { .. } => Some(Mode::Prefixed),
            Detected::NotAllocator => None,
        }
    }

    /// A system runtime whose allocation functions the replacements
    /// override: judged as what it is, never as a replacement.
    pub fn is_system(&self) -> bool {
        matches!(self, Detected::CLibrary | Detected::CxxRuntime)
    }

    pub fn prefix(&self) -> &str {
        match self {
            Detected::Prefixed { prefix } => prefix,
            _ => "",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Detected::Interposer => "interposer (replaces malloc & co.)".to_string(),
            Detected::Prefixed { prefix } => format!("prefixed (the {}_malloc family, beside the system allocator)", prefix),
            Detected::CLibrary => "the C library itself (the allocator replacements override)".to_string(),
            Detected::CxxRuntime => {
                "the C++ runtime itself (its operator new and delete call malloc; replacements override them)".to_string()
            }
            Detected::NotAllocator => "not an allocator".to_string(),
        }
    }
}

/// A `<prefix>_malloc` family found in the exports.
#[derive(Clone, Debug, Serialize)]
pub struct PrefixedFamily {
    pub prefix: String,
    /// How many of the contract's prefixed names it exports.
    pub exported: usize,
    pub of: usize,
}

/// The required C functions (malloc, free, calloc, realloc).
fn required() -> impl Iterator<Item = &'static str> {
    contract::EXPORTS.iter().filter(|e| e.family == Family::Malloc && e.need == Need::Required).map(|e| e.name)
}

pub fn detect(lib: &Library) -> (Detected, Vec<PrefixedFamily>) {
    let prefixed = prefixed_families(lib);
    let interposes = required().any(|n| lib.defined.contains(n))
        || contract::EXPORTS.iter().any(|e| matches!(e.family, Family::CxxNew | Family::CxxDelete) && lib.defined.contains(e.name))
        || lib.macho.as_ref().map_or(false, |m| m.interpose_section);
    let detected = if lib.defined.contains("__libc_start_main") {
        Detected::CLibrary
    } else if is_cxx_runtime(lib) {
        Detected::CxxRuntime
    } else if interposes {
        Detected::Interposer
    } else if let Some(best) = prefixed.first() {
        Detected::Prefixed { prefix: best.prefix.clone() }
    } else {
        Detected::NotAllocator
    };
    (detected, prefixed)
}

/// The C++ runtime: operator new and the C++ ABI's exception machinery
/// (`__cxa_throw`, `std::terminate`) without malloc. A C++ heap that links
/// libstdc++ statically exports both too, but replaces malloc as well.
fn is_cxx_runtime(lib: &Library) -> bool {
    const OPERATOR_NEW: &[&str] = &["_Znwm", "_Znwj", "_Znwy"];
    const ABI: &[&str] = &["__cxa_throw", "__cxa_begin_catch", "_ZSt9terminatev"];
    !required().any(|n| lib.defined.contains(n))
        && OPERATOR_NEW.iter().any(|n| lib.defined.contains(*n))
        && ABI.iter().any(|n| lib.defined.contains(*n))
}

/// Every prefix P with both P_malloc and P_free exported, most complete first.
fn prefixed_families(lib: &Library) -> Vec<PrefixedFamily> {
    let names: Vec<&str> = contract::EXPORTS.iter().filter(|e| e.modes.contains(&Mode::Prefixed)).map(|e| e.name).collect();
    let mut found: Vec<PrefixedFamily> = lib
        .defined
        .iter()
        .filter_map(|n| n.strip_suffix("_malloc"))
        .filter(|p| contract::valid_prefix(p))
        // `__libc_malloc` is glibc's alias, not a family of its own.
        .filter(|p| !contract::EXPORTS.iter().any(|e| e.name.strip_suffix("_malloc") == Some(*p)))
        .filter(|p| lib.defined.contains(&format!("{}_free", p)))
        .map(|p| PrefixedFamily {
            prefix: p.to_string(),
            exported: names.iter().filter(|n| lib.defined.contains(&format!("{}_{}", p, n))).count(),
            of: names.len(),
        })
        .collect();
    found.sort_by(|a, b| b.exported.cmp(&a.exported).then_with(|| a.prefix.cmp(&b.prefix)));
    found
}
