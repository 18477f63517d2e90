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
    /// glibc's internal entry points (`__libc_malloc`...): checked, never exported by our shims.
    GlibcAliases,
    /// Imports through which a heap makes `fork` safe (`pthread_atfork`).
    ForkHooks,
    /// Imports through which a heap learns that a thread exits (thread caches).
    ThreadHooks,
    /// `pthread_create`, exported by `--threads` shims to run the heap's
    /// thread hooks; an option of ours, not something `check` asks of others.
    ThreadStart,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Malloc,
        Family::Aligned,
        Family::UsableSize,
        Family::GlibcCompat,
        Family::CxxNew,
        Family::CxxDelete,
        Family::GlibcAliases,
        Family::ForkHooks,
        Family::ThreadHooks,
        Family::ThreadStart,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Family::Malloc => "C malloc family",
            Family::Aligned => "aligned allocation",
            Family::UsableSize => "usable size",
            Family::GlibcCompat => "glibc compatibility",
            Family::CxxNew => "C++ operator new",
            Family::CxxDelete => "C++ operator delete",
            Family::GlibcAliases => "glibc aliases",
            Family::ForkHooks => "fork hooks",
            Family::ThreadHooks => "thread-exit hooks",
            Family::ThreadStart => "thread start hook",
        }
    }

    /// Hook families are symbols the library imports (it calls them to
    /// register itself), and one of them suffices; the others are exports,
    /// each of which counts.
    pub fn is_hook(self) -> bool {
        matches!(self, Family::ForkHooks | Family::ThreadHooks)
    }

    /// The modes in which `check` looks for this family.
    pub fn checked_in(self) -> &'static [Mode] {
        match self {
            Family::Malloc | Family::Aligned | Family::UsableSize | Family::ForkHooks | Family::ThreadHooks => BOTH,
            Family::GlibcCompat | Family::CxxNew | Family::CxxDelete | Family::GlibcAliases => INTERPOSE,
            Family::ThreadStart => &[],
        }
    }

    /// The platforms whose libraries `check` looks for this family in: the C
    /// names are the same everywhere, the Itanium C++ names on Linux and macOS
    /// (MSVC mangles differently), the rest is glibc's.
    pub fn checked_on(self, platform: Platform) -> bool {
        match self {
            Family::Malloc | Family::Aligned | Family::UsableSize => true,
            Family::CxxNew | Family::CxxDelete => platform != Platform::Windows,
            Family::GlibcCompat | Family::GlibcAliases | Family::ForkHooks | Family::ThreadHooks | Family::ThreadStart => {
                platform == Platform::Linux
            }
        }
    }

    /// What goes wrong in a process when a library replaces malloc but lacks
    /// (part of) this family: the plain-words consequence `check` prints.
    pub fn consequence(self) -> &'static str {
        match self {
            Family::Malloc => "programs mix two allocators: blocks from one are freed by the other and the heap is corrupted",
            Family::Aligned => "aligned allocations come from glibc's heap but are freed by this library: heap corruption or a crash on the first free",
            Family::UsableSize => "malloc_usable_size asks glibc about this library's blocks: wrong sizes or a crash",
            Family::GlibcCompat => "old binaries that call cfree hand this library's blocks to glibc's free: a crash",
            Family::CxxNew => "C++ new takes memory from another allocator than the one this library's delete returns it to",
            Family::CxxDelete => "C++ delete hands this library's blocks to another allocator: heap corruption",
            Family::GlibcAliases => "callers of glibc's internal names (some shims and tools) get glibc's heap and hand its blocks to this library's free",
            Family::ForkHooks => "no fork handler: if a thread holds the heap's lock while another forks, the child deadlocks on its first malloc",
            Family::ThreadHooks => "no thread-exit hook: whatever a thread caches is not given back when it exits",
            Family::ThreadStart => "a heap with per-thread state never learns that threads start (fine for heaps without it)",
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
    /// When a replacement lacks this symbol, the system's own version runs,
    /// and calls these names through the dynamic linker (so they reach the
    /// replacement if it has them). Empty: the system's version serves the
    /// call from its own heap. (glibc 2.36 and GCC 12's libstdc++, read from
    /// their code: `reallocarray` jumps to `realloc@plt`, `_ZdlPvm` to `_ZdlPv@plt`...)
    pub via: &'static [&'static str],
}

const BOTH: &[Mode] = &[Mode::Interpose, Mode::Prefixed];
const INTERPOSE: &[Mode] = &[Mode::Interpose];
const LINUX: &[Platform] = &[Platform::Linux];

macro_rules! via {
    () => {
        &[]
    };
    ($via:expr) => {
        $via
    };
}

macro_rules! c_fn {
    ($name:literal, $family:ident, $need:ident, $modes:expr, ($($params:tt)*) -> $ret:literal, $body:literal, $c:literal $(, via $via:expr)?) => {
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
            via: via!($($via)?),
        }
    };
}

macro_rules! cxx_fn {
    ($name:literal, $family:ident, $abi:ident, ($($params:tt)*) -> $ret:literal, $body:literal, via $via:literal) => {
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
            via: &[$via],
        }
    };
}

/// A name `check` looks for that our shims never export (modes is empty, so
/// the renderer skips it).
macro_rules! checked {
    ($name:literal, $family:ident, $need:ident) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::$need,
            modes: &[],
            platforms: LINUX,
            abi: Abi::C,
            params: "",
            ret: "",
            body: "",
            c_decl: "",
            via: &[],
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
        "alloc8::shim::reallocarray(&HEAP, ptr, count, size)", "void *{}(void *ptr, size_t count, size_t size)",
        via &["realloc"]),
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
    cxx_fn!("_Znwm", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(size, &NEXT__Znwm)", via "malloc"),
    cxx_fn!("_Znam", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(size, &NEXT__Znam)", via "_Znwm"),
    cxx_fn!("_ZnwmRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(size, nothrow, &NEXT__ZnwmRKSt9nothrow_t)", via "_Znwm"),
    cxx_fn!("_ZnamRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(size, nothrow, &NEXT__ZnamRKSt9nothrow_t)", via "_Znam"),
    cxx_fn!("_ZnwmSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(size, align, &NEXT__ZnwmSt11align_val_t)", via "aligned_alloc"),
    cxx_fn!("_ZnamSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(size, align, &NEXT__ZnamSt11align_val_t)", via "_ZnwmSt11align_val_t"),
    cxx_fn!("_ZnwmSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(size, align, nothrow, &NEXT__ZnwmSt11align_val_tRKSt9nothrow_t)", via "_ZnwmSt11align_val_t"),
    cxx_fn!("_ZnamSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(size, align, nothrow, &NEXT__ZnamSt11align_val_tRKSt9nothrow_t)", via "_ZnamSt11align_val_t"),
    // C++ operator delete: every form frees through the heap.
    cxx_fn!("_ZdlPv", CxxDelete, C, (ptr: *mut u8) -> "", "alloc8::shim::free(&HEAP, ptr)", via "free"),
    cxx_fn!("_ZdaPv", CxxDelete, C, (ptr: *mut u8) -> "", "alloc8::shim::free(&HEAP, ptr)", via "_ZdlPv"),
    cxx_fn!("_ZdlPvm", CxxDelete, C, (ptr: *mut u8, size: usize) -> "", "alloc8::shim::free_sized(&HEAP, ptr, size)", via "_ZdlPv"),
    cxx_fn!("_ZdaPvm", CxxDelete, C, (ptr: *mut u8, size: usize) -> "", "alloc8::shim::free_sized(&HEAP, ptr, size)", via "_ZdaPv"),
    cxx_fn!("_ZdlPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _nothrow: *const u8) -> "", "alloc8::shim::free(&HEAP, ptr)", via "_ZdlPv"),
    cxx_fn!("_ZdaPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _nothrow: *const u8) -> "", "alloc8::shim::free(&HEAP, ptr)", via "_ZdaPv"),
    cxx_fn!("_ZdlPvSt11align_val_t", CxxDelete, C, (ptr: *mut u8, _align: usize) -> "", "alloc8::shim::free(&HEAP, ptr)", via "free"),
    cxx_fn!("_ZdaPvSt11align_val_t", CxxDelete, C, (ptr: *mut u8, _align: usize) -> "", "alloc8::shim::free(&HEAP, ptr)", via "_ZdlPvSt11align_val_t"),
    cxx_fn!("_ZdlPvmSt11align_val_t", CxxDelete, C, (ptr: *mut u8, size: usize, align: usize) -> "",
        "alloc8::shim::free_aligned_sized(&HEAP, ptr, size, align)", via "_ZdlPvSt11align_val_t"),
    cxx_fn!("_ZdaPvmSt11align_val_t", CxxDelete, C, (ptr: *mut u8, size: usize, align: usize) -> "",
        "alloc8::shim::free_aligned_sized(&HEAP, ptr, size, align)", via "_ZdaPvSt11align_val_t"),
    cxx_fn!("_ZdlPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _align: usize, _nothrow: *const u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)", via "_ZdlPvSt11align_val_t"),
    cxx_fn!("_ZdaPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut u8, _align: usize, _nothrow: *const u8) -> "",
        "alloc8::shim::free(&HEAP, ptr)", via "_ZdaPvSt11align_val_t"),
    // glibc's internal names for its own heap, which glibc 2.36 exports. A
    // shim that forwards to glibc through them must not export them (its
    // calls would bind to itself), so ours leave them out; `check` reports them.
    checked!("__libc_malloc", GlibcAliases, Optional),
    checked!("__libc_free", GlibcAliases, Optional),
    checked!("__libc_calloc", GlibcAliases, Optional),
    checked!("__libc_realloc", GlibcAliases, Optional),
    checked!("__libc_memalign", GlibcAliases, Optional),
    checked!("__libc_valloc", GlibcAliases, Optional),
    checked!("__libc_pvalloc", GlibcAliases, Optional),
    // Hooks are imports, and one of a family suffices: `pthread_atfork`
    // compiles to `__register_atfork` (libc_nonshared.a) when linked against glibc.
    checked!("pthread_atfork", ForkHooks, Optional),
    checked!("__register_atfork", ForkHooks, Optional),
    checked!("pthread_key_create", ThreadHooks, Optional),
    checked!("__cxa_thread_atexit_impl", ThreadHooks, Optional),
    // Thread hooks: exported only by shims built with `--threads`.
    Export {
        name: "pthread_create",
        family: Family::ThreadStart,
        need: Need::Optional,
        modes: INTERPOSE,
        platforms: LINUX,
        abi: Abi::C,
        params: "thread: *mut usize, attr: *const u8, start: crate::threads::Start, arg: *mut u8",
        ret: "i32",
        body: "crate::threads::pthread_create(thread, attr, start, arg)",
        c_decl: "",
        via: &[],
    },
];

/// What a shim built for `platform` in `mode` exports, with its exported names:
/// the whole table for that mode, less the thread hooks unless `threads`.
pub fn shim_exports(platform: Platform, mode: Mode, prefix: &str, threads: bool) -> Vec<(String, &'static Export)> {
    exports_for(platform, mode, prefix).into_iter().filter(|(_, e)| threads || e.family != Family::ThreadStart).collect()
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

/// What `check` looks for in a `platform` library of `mode`: every family
/// checked there, hooks included.
pub fn checked(platform: Platform, mode: Mode) -> impl Iterator<Item = &'static Export> {
    EXPORTS.iter().filter(move |e| e.family.checked_on(platform) && e.family.checked_in().contains(&mode))
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
    fn forwarding_routes_name_contract_rows_and_end() {
        for e in EXPORTS {
            for target in e.via {
                let mut seen = HashSet::new();
                let mut at = EXPORTS.iter().find(|x| x.name == *target).unwrap_or_else(|| panic!("{} forwards to unknown {}", e.name, target));
                // Each route ends at a row the system serves from its own heap (malloc, free...).
                while let Some(next) = at.via.first() {
                    assert!(seen.insert(at.name), "{} forwards in a circle", e.name);
                    at = EXPORTS.iter().find(|x| x.name == *next).unwrap();
                }
                assert_eq!(at.family.checked_in(), BOTH, "{} ends at {}, which prefixed libraries lack", e.name, at.name);
            }
        }
    }

    #[test]
    fn checked_only_rows_are_never_rendered() {
        for mode in [Mode::Interpose, Mode::Prefixed] {
            for (name, e) in exports_for(Platform::Linux, mode, "p") {
                assert!(!e.family.is_hook() && e.family != Family::GlibcAliases, "{} would be exported", name);
            }
        }
        let linux: Vec<_> = checked(Platform::Linux, Mode::Interpose).map(|e| e.name).collect();
        assert!(linux.contains(&"__libc_malloc") && linux.contains(&"__register_atfork") && linux.contains(&"_ZdlPv"));
        let windows: Vec<_> = checked(Platform::Windows, Mode::Interpose).map(|e| e.name).collect();
        assert!(windows.contains(&"malloc") && !windows.iter().any(|n| n.starts_with("_Z") || n.starts_with("__")));
    }

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(valid_prefix("foo") && valid_prefix("_x9") && valid_prefix("My_Heap"));
        for bad in ["", "9x", "foo-bar", "a b", "ü", "foo;"] {
            assert!(!valid_prefix(bad), "{:?}", bad);
        }
    }
}
