//! The symbol contract: every symbol a shim exports, per platform and mode, as data.
//!
//! This table is the single source of truth. `render` generates the shim's
//! `#[export_name]` wrappers from it, `audit` checks built artifacts (ours and
//! anyone's) against it, and `header` writes the prefixed-mode C header from it.
//! Add a symbol here and all three follow.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Linux,
    Macos,
    Windows,
}

impl Platform {
    pub fn host() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Macos
        } else if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Linux
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace the process allocator (malloc, free, ... and the C++ operators).
    Interpose,
    /// Export `<prefix>_malloc`, ... beside the system allocator.
    Prefixed,
}

/// Groups of symbols that stand or fall together; `check` reports per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Malloc,
    Aligned,
    UsableSize,
    GlibcCompat,
    CxxNew,
    CxxDelete,
    /// `pthread_create`, interposed by `--threads` shims to run the heap's thread hooks.
    Threads,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Malloc,
        Family::Aligned,
        Family::UsableSize,
        Family::GlibcCompat,
        Family::CxxNew,
        Family::CxxDelete,
        Family::Threads,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Family::Malloc => "C malloc family",
            Family::Aligned => "aligned allocation",
            Family::UsableSize => "usable size",
            Family::GlibcCompat => "glibc compatibility",
            Family::CxxNew => "C++ operator new",
            Family::CxxDelete => "C++ operator delete",
            Family::Threads => "thread hooks",
        }
    }

    /// What goes wrong in a process when a library replaces malloc but lacks
    /// (part of) this family: the plain-words consequence `check` prints.
    pub fn consequence(self) -> &'static str {
        match self {
            Family::Malloc => "programs mix two allocators: blocks from one are freed by the other and the heap is corrupted",
            Family::Aligned => "aligned allocations come from glibc but are freed by this library: heap corruption on the first free",
            Family::UsableSize => "malloc_usable_size asks glibc about this library's blocks: wrong sizes or a crash",
            Family::GlibcCompat => "old binaries or callers of these names reach glibc with this library's pointers",
            Family::CxxNew => "C++ new goes through libstdc++ to malloc (works, but misses the heap's own operator path)",
            Family::CxxDelete => "a C++ delete form is handled by libstdc++, which is fine only if it forwards to this library's free",
            Family::Threads => "a heap with per-thread state never learns that threads start or end (fine for heaps without it)",
        }
    }
}

/// How a shim must treat the symbol's absence (used by `check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// Without it the library is not a working replacement.
    Required,
    /// Missing it is a real hazard in some programs.
    Expected,
    /// Nice to have (old ABI names).
    Optional,
}

/// The calling convention of the generated wrapper. C++ throwing `new` must
/// let libstdc++'s `bad_alloc` unwind through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    C,
    CUnwind,
}

#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// The symbol without any prefix (`malloc`, `_Znwm`).
    pub name: &'static str,
    pub family: Family,
    pub need: Need,
    /// Modes in which a shim exports it.
    pub modes: &'static [Mode],
    pub platforms: &'static [Platform],
    pub abi: Abi,
    /// Rust parameter list of the wrapper.
    pub params: &'static str,
    /// Rust return type ("" for none).
    pub ret: &'static str,
    /// The wrapper's body; `HEAP` is the registered heap.
    pub body: &'static str,
    /// The C prototype for the prefixed-mode header (`{}` is where the name goes).
    pub c_decl: &'static str,
}

const BOTH: &[Mode] = &[Mode::Interpose, Mode::Prefixed];
const INTERPOSE: &[Mode] = &[Mode::Interpose];
const LINUX: &[Platform] = &[Platform::Linux];

macro_rules! c_fn {
    ($name:literal, $family:ident, $need:ident, $modes:expr, ($($params:tt)*) -> $ret:literal, $body:literal, $c:literal) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::$need,
            modes: $modes,
            platforms: LINUX,
            abi: Abi::C,
            params: stringify!($($params)*),
            ret: $ret,
            body: $body,
            c_decl: $c,
        }
    };
}

macro_rules! cxx_fn {
    ($name:literal, $family:ident, $abi:ident, ($($params:tt)*) -> $ret:literal, $body:literal) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::Expected,
            modes: INTERPOSE,
            platforms: LINUX,
            abi: Abi::$abi,
            params: stringify!($($params)*),
            ret: $ret,
            body: $body,
            c_decl: "",
        }
    };
}

/// Every symbol, in the order the shim defines them.
pub static EXPORTS: &[Export] = &[
    // The C malloc family.
    c_fn!("malloc", Malloc, Required, BOTH, (size: usize) -> "*mut u8",
        "alloc8::shim::malloc(&HEAP, size)", "void *{}(size_t size)"),
    c_fn!("free", Malloc, Required, BOTH, (ptr: *mut u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)", "void {}(void *ptr)"),
    c_fn!("calloc", Malloc, Required, BOTH, (count: usize, size: usize) -> "*mut u8",
        "alloc8::shim::calloc(&HEAP, count, size)", "void *{}(size_t count, size_t size)"),
    c_fn!("realloc", Malloc, Required, BOTH, (ptr: *mut u8, size: usize) -> "*mut u8",
        "alloc8::shim::realloc(&HEAP, ptr, size)", "void *{}(void *ptr, size_t size)"),
    c_fn!("reallocarray", Malloc, Expected, BOTH, (ptr: *mut u8, count: usize, size: usize) -> "*mut u8",
        "alloc8::shim::reallocarray(&HEAP, ptr, count, size)", "void *{}(void *ptr, size_t count, size_t size)"),
    // Aligned allocation.
    c_fn!("posix_memalign", Aligned, Expected, BOTH, (out: *mut *mut u8, align: usize, size: usize) -> "i32",
        "alloc8::shim::posix_memalign(&HEAP, out, align, size)", "int {}(void **out, size_t alignment, size_t size)"),
    c_fn!("aligned_alloc", Aligned, Expected, BOTH, (align: usize, size: usize) -> "*mut u8",
        "alloc8::shim::aligned_alloc(&HEAP, align, size)", "void *{}(size_t alignment, size_t size)"),
    c_fn!("memalign", Aligned, Expected, BOTH, (align: usize, size: usize) -> "*mut u8",
        "alloc8::shim::memalign(&HEAP, align, size)", "void *{}(size_t alignment, size_t size)"),
    c_fn!("valloc", Aligned, Expected, BOTH, (size: usize) -> "*mut u8",
        "alloc8::shim::valloc(&HEAP, size)", "void *{}(size_t size)"),
    c_fn!("pvalloc", Aligned, Expected, BOTH, (size: usize) -> "*mut u8",
        "alloc8::shim::pvalloc(&HEAP, size)", "void *{}(size_t size)"),
    // Usable size.
    c_fn!("malloc_usable_size", UsableSize, Expected, BOTH, (ptr: *mut u8) -> "usize",
        "alloc8::shim::usable_size(&HEAP, ptr)", "size_t {}(void *ptr)"),
    // Old glibc ABI names.
    c_fn!("cfree", GlibcCompat, Optional, INTERPOSE, (ptr: *mut u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)", "void {}(void *ptr)"),
    // C++ operator new: the heap on the fast path; on failure the next
    // definition (libstdc++) runs the new_handler loop and throws bad_alloc.
    cxx_fn!("_Znwm", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(size, &NEXT__Znwm)"),
    cxx_fn!("_Znam", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(size, &NEXT__Znam)"),
    cxx_fn!("_ZnwmRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(size, nothrow, &NEXT__ZnwmRKSt9nothrow_t)"),
    cxx_fn!("_ZnamRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(size, nothrow, &NEXT__ZnamRKSt9nothrow_t)"),
    cxx_fn!("_ZnwmSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(size, align, &NEXT__ZnwmSt11align_val_t)"),
    cxx_fn!("_ZnamSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(size, align, &NEXT__ZnamSt11align_val_t)"),
    cxx_fn!("_ZnwmSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(size, align, nothrow, &NEXT__ZnwmSt11align_val_tRKSt9nothrow_t)"),
    cxx_fn!("_ZnamSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(size, align, nothrow, &NEXT__ZnamSt11align_val_tRKSt9nothrow_t)"),
    // C++ operator delete: every form frees through the heap.
    cxx_fn!("_ZdlPv", CxxDelete, C, (ptr: *mut u8) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdaPv", CxxDelete, C, (ptr: *mut u8) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdlPvm", CxxDelete, C, (ptr: *mut u8, size: usize) -> "", "alloc8::shim::free_sized(&HEAP, ptr, size)"),
    cxx_fn!("_ZdaPvm", CxxDelete, C, (ptr: *mut u8, size: usize) -> "", "alloc8::shim::free_sized(&HEAP, ptr, size)"),
    cxx_fn!("_ZdlPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _nothrow: *const u8) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdaPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _nothrow: *const u8) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdlPvSt11align_val_t", CxxDelete, C, (ptr: *mut u8, _align: usize) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdaPvSt11align_val_t", CxxDelete, C, (ptr: *mut u8, _align: usize) -> "", "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdlPvmSt11align_val_t", CxxDelete, C, (ptr: *mut u8, size: usize, _align: usize) -> "",
        "alloc8::shim::free_sized(&HEAP, ptr, size)"),
    cxx_fn!("_ZdaPvmSt11align_val_t", CxxDelete, C, (ptr: *mut u8, size: usize, _align: usize) -> "",
        "alloc8::shim::free_sized(&HEAP, ptr, size)"),
    cxx_fn!("_ZdlPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _align: usize, _nothrow: *const u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)"),
    cxx_fn!("_ZdaPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _align: usize, _nothrow: *const u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)"),
    // Thread hooks: exported only by shims built with `--threads`.
    Export {
        name: "pthread_create",
        family: Family::Threads,
        need: Need::Optional,
        modes: INTERPOSE,
        platforms: LINUX,
        abi: Abi::C,
        params: "thread: *mut usize, attr: *const u8, start: crate::threads::Start, arg: *mut u8",
        ret: "i32",
        body: "crate::threads::pthread_create(thread, attr, start, arg)",
        c_decl: "",
    },
];

/// What a shim built for `platform` in `mode` exports, with its exported names:
/// the whole table for that mode, less the thread hooks unless `threads`.
pub fn shim_exports(platform: Platform, mode: Mode, prefix: &str, threads: bool) -> Vec<(String, &'static Export)> {
    exports_for(platform, mode, prefix).into_iter().filter(|(_, e)| threads || e.family != Family::Threads).collect()
}

/// Every symbol the table has for `platform` in `mode` (what `check` judges
/// a library against), with its exported names.
pub fn exports_for(platform: Platform, mode: Mode, prefix: &str) -> Vec<(String, &'static Export)> {
    EXPORTS
        .iter()
        .filter(|e| e.platforms.contains(&platform) && e.modes.contains(&mode))
        .map(|e| (exported_name(e, mode, prefix), e))
        .collect()
}

pub fn exported_name(e: &Export, mode: Mode, prefix: &str) -> String {
    match mode {
        Mode::Interpose => e.name.to_string(),
        Mode::Prefixed => format!("{}_{}", prefix, e.name),
    }
}

/// Whether `prefix` can start C identifiers (`foo` gives `foo_malloc`).
pub fn valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for e in EXPORTS {
            assert!(seen.insert(e.name), "{} listed twice", e.name);
        }
    }

    #[test]
    fn linux_interpose_has_the_c_family_and_all_twenty_cxx_operators() {
        let names: Vec<_> = exports_for(Platform::Linux, Mode::Interpose, "").into_iter().map(|(n, _)| n).collect();
        for c in ["malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree"] {
            assert!(names.iter().any(|n| n == c), "{} missing", c);
        }
        let cxx = names.iter().filter(|n| n.starts_with("_Z")).count();
        assert_eq!(cxx, 20);
    }

    #[test]
    fn prefixed_mode_has_eleven_prefixed_c_functions_and_nothing_that_interposes() {
        let names: Vec<_> = exports_for(Platform::Linux, Mode::Prefixed, "foo").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 11);
        assert!(names.iter().all(|n| n.starts_with("foo_")));
        assert!(names.contains(&"foo_malloc_usable_size".to_string()));
    }

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(valid_prefix("foo") && valid_prefix("_x9") && valid_prefix("My_Heap"));
        for bad in ["", "9x", "foo-bar", "a b", "ü", "foo;"] {
            assert!(!valid_prefix(bad), "{:?}", bad);
        }
    }
}
