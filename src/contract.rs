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
    /// macOS: the malloc zone API (`malloc_zone_malloc`, `malloc_default_zone`...).
    MallocZone,
    /// macOS: `_malloc_fork_prepare/parent/child`, libSystem's fork sequence.
    MallocFork,
}

impl Family {
    pub const ALL: [Family; 12] = [
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
        Family::MallocZone,
        Family::MallocFork,
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
            Family::MallocZone => "malloc zone API",
            Family::MallocFork => "malloc fork hooks",
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
            Family::GlibcCompat | Family::CxxNew | Family::CxxDelete | Family::GlibcAliases | Family::MallocZone | Family::MallocFork => {
                INTERPOSE
            }
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
            Family::MallocZone | Family::MallocFork => platform == Platform::Macos,
        }
    }

    /// What goes wrong in a process when a library replaces malloc but lacks
    /// (part of) this family: the plain-words consequence `check` prints.
    pub fn consequence(self) -> &'static str {
        match self {
            Family::Malloc => "programs mix two allocators: blocks from one are freed by the other and the heap is corrupted",
            Family::Aligned => "aligned allocations come from the system's heap but are freed by this library: heap corruption or a crash on the first free",
            Family::UsableSize => "the system allocator is asked the size of this library's blocks: wrong sizes or a crash",
            Family::GlibcCompat => "old binaries that call cfree hand this library's blocks to glibc's free: a crash",
            Family::CxxNew => "C++ new takes memory from another allocator than the one this library's delete returns it to",
            Family::CxxDelete => "C++ delete hands this library's blocks to another allocator: heap corruption",
            Family::GlibcAliases => "callers of glibc's internal names (on Debian 12 only glibc's libc_malloc_debug.so) get glibc's own heap",
            Family::ForkHooks => "no fork handler: if a thread holds the heap's lock while another forks, the child deadlocks on its first malloc",
            Family::ThreadHooks => "no thread-exit hook: whatever a thread caches is not given back when it exits",
            Family::ThreadStart => "a heap with per-thread state never learns that threads start (fine for heaps without it)",
            Family::MallocZone => "callers of the zone API (CoreFoundation, Objective-C, malloc_zone_*) get libmalloc's zones and hand their blocks to this library's free, or the reverse",
            Family::MallocFork => "no fork hook: if a thread holds the heap's lock while another forks, the child deadlocks on its first malloc",
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
    /// Worth knowing, not a hazard: almost nothing calls it.
    Seldom,
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
const MACOS: &[Platform] = &[Platform::Macos];
const WINDOWS: &[Platform] = &[Platform::Windows];

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

/// A Windows row: the C runtime's own name, exported by the redirect DLL
/// (programs may link it directly) and hooked in every CRT module.
macro_rules! win_fn {
    ($name:literal, $family:ident, $need:ident, ($($params:tt)*) -> $ret:literal, $body:literal) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::$need,
            modes: INTERPOSE,
            platforms: WINDOWS,
            abi: Abi::C,
            params: stringify!($($params)*),
            ret: $ret,
            body: $body,
            c_decl: "",
            via: &[],
        }
    };
}

/// A macOS row. `name` is the libSystem function the dylib interposes; the
/// dylib's own function is `alloc8_<name>` (see [`replacement_name`]), and
/// the `__DATA,__interpose` table pairs the two. Bodies see `HEAP`, `SYSTEM`,
/// `ZONE`, `HOOKS` (templates/shim/src/macos.rs), `replace` and `c_void`.
macro_rules! mac_fn {
    ($name:literal, $family:ident, $need:ident, ($($params:tt)*) -> $ret:literal, $body:literal $(, via $via:expr)?) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::$need,
            modes: INTERPOSE,
            platforms: MACOS,
            abi: Abi::C,
            params: stringify!($($params)*),
            ret: $ret,
            body: $body,
            c_decl: "",
            via: via!($($via)?),
        }
    };
}

/// A macOS C++ operator (libc++ uses the same Itanium names as libstdc++).
macro_rules! mac_cxx {
    ($name:literal, $family:ident, $abi:ident, ($($params:tt)*) -> $ret:literal, $body:literal, via $via:literal) => {
        Export {
            name: $name,
            family: Family::$family,
            need: Need::Expected,
            modes: INTERPOSE,
            platforms: MACOS,
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
    cxx_fn!("_Znwm", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(&HEAP, size, &NEXT__Znwm)", via "malloc"),
    cxx_fn!("_Znam", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::cxx::new(&HEAP, size, &NEXT__Znam)", via "_Znwm"),
    cxx_fn!("_ZnwmRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(&HEAP, size, nothrow, &NEXT__ZnwmRKSt9nothrow_t)", via "_Znwm"),
    cxx_fn!("_ZnamRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_nothrow(&HEAP, size, nothrow, &NEXT__ZnamRKSt9nothrow_t)", via "_Znam"),
    cxx_fn!("_ZnwmSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(&HEAP, size, align, &NEXT__ZnwmSt11align_val_t)", via "aligned_alloc"),
    cxx_fn!("_ZnamSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::cxx::new_aligned(&HEAP, size, align, &NEXT__ZnamSt11align_val_t)", via "_ZnwmSt11align_val_t"),
    cxx_fn!("_ZnwmSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(&HEAP, size, align, nothrow, &NEXT__ZnwmSt11align_val_tRKSt9nothrow_t)", via "_ZnwmSt11align_val_t"),
    cxx_fn!("_ZnamSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::cxx::new_aligned_nothrow(&HEAP, size, align, nothrow, &NEXT__ZnamSt11align_val_tRKSt9nothrow_t)", via "_ZnamSt11align_val_t"),
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
    checked!("__libc_malloc", GlibcAliases, Seldom),
    checked!("__libc_free", GlibcAliases, Seldom),
    checked!("__libc_calloc", GlibcAliases, Seldom),
    checked!("__libc_realloc", GlibcAliases, Seldom),
    checked!("__libc_memalign", GlibcAliases, Seldom),
    checked!("__libc_valloc", GlibcAliases, Seldom),
    checked!("__libc_pvalloc", GlibcAliases, Seldom),
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
    // ---- macOS (interpose only): each row is one pair of `__DATA,__interpose`.
    // libmalloc's own internal calls never reach an interposed name, so the
    // C rows have no forwarding route: a missing one is served from libmalloc's zones.
    mac_fn!("malloc", Malloc, Required, (size: usize) -> "*mut c_void", "alloc8::shim::malloc(&HEAP, size) as *mut c_void"),
    mac_fn!("free", Malloc, Required, (ptr: *mut c_void) -> "", "replace::free(&HEAP, &SYSTEM, ptr)"),
    mac_fn!("calloc", Malloc, Required, (count: usize, size: usize) -> "*mut c_void",
        "alloc8::shim::calloc(&HEAP, count, size) as *mut c_void"),
    mac_fn!("realloc", Malloc, Required, (ptr: *mut c_void, size: usize) -> "*mut c_void", "replace::realloc(&HEAP, &SYSTEM, ptr, size)"),
    mac_fn!("reallocf", Malloc, Expected, (ptr: *mut c_void, size: usize) -> "*mut c_void", "replace::reallocf(&HEAP, &SYSTEM, ptr, size)"),
    mac_fn!("vfree", Malloc, Expected, (ptr: *mut c_void) -> "", "replace::free(&HEAP, &SYSTEM, ptr)"),
    mac_fn!("valloc", Aligned, Expected, (size: usize) -> "*mut c_void", "alloc8::shim::valloc(&HEAP, size) as *mut c_void"),
    mac_fn!("posix_memalign", Aligned, Expected, (out: *mut *mut u8, align: usize, size: usize) -> "i32",
        "alloc8::shim::posix_memalign(&HEAP, out, align, size)"),
    mac_fn!("aligned_alloc", Aligned, Expected, (align: usize, size: usize) -> "*mut c_void",
        "alloc8::shim::aligned_alloc(&HEAP, align, size) as *mut c_void"),
    mac_fn!("malloc_size", UsableSize, Expected, (ptr: *const c_void) -> "usize", "replace::malloc_size(&HEAP, &SYSTEM, ptr)"),
    mac_fn!("malloc_good_size", UsableSize, Expected, (size: usize) -> "usize", "replace::good_size(size)"),
    // The zone API: every zone is ours (as in the other replacements); foreign
    // pointers still go to the system when the heap can tell them apart.
    mac_fn!("malloc_create_zone", MallocZone, Expected, (_start: usize, _flags: u32) -> "*mut MallocZone", "ZONE.as_ptr()"),
    mac_fn!("malloc_default_zone", MallocZone, Expected, () -> "*mut MallocZone", "ZONE.as_ptr()"),
    mac_fn!("malloc_default_purgeable_zone", MallocZone, Optional, () -> "*mut MallocZone", "ZONE.as_ptr()"),
    mac_fn!("malloc_destroy_zone", MallocZone, Optional, (_zone: *mut MallocZone) -> "", ""),
    mac_fn!("malloc_get_all_zones", MallocZone, Optional,
        (_task: u32, _reader: *mut c_void, addresses: *mut *mut usize, count: *mut u32) -> "i32",
        "replace::get_all_zones(addresses, count)"),
    mac_fn!("malloc_get_zone_name", MallocZone, Optional, (zone: *mut MallocZone) -> "*const u8",
        "if zone.is_null() { core::ptr::null() } else { (*zone).zone_name }"),
    // libmalloc's version mprotects the zone and allocates: a no-op, as in the anchors.
    mac_fn!("malloc_set_zone_name", MallocZone, Optional, (_zone: *mut MallocZone, _name: *const u8) -> "", ""),
    mac_fn!("malloc_zone_malloc", MallocZone, Expected, (_zone: *mut MallocZone, size: usize) -> "*mut c_void",
        "alloc8::shim::malloc(&HEAP, size) as *mut c_void"),
    mac_fn!("malloc_zone_calloc", MallocZone, Expected, (_zone: *mut MallocZone, count: usize, size: usize) -> "*mut c_void",
        "alloc8::shim::calloc(&HEAP, count, size) as *mut c_void"),
    mac_fn!("malloc_zone_valloc", MallocZone, Expected, (_zone: *mut MallocZone, size: usize) -> "*mut c_void",
        "alloc8::shim::valloc(&HEAP, size) as *mut c_void"),
    mac_fn!("malloc_zone_realloc", MallocZone, Expected, (_zone: *mut MallocZone, ptr: *mut c_void, size: usize) -> "*mut c_void",
        "replace::realloc(&HEAP, &SYSTEM, ptr, size)"),
    mac_fn!("malloc_zone_memalign", MallocZone, Expected, (_zone: *mut MallocZone, align: usize, size: usize) -> "*mut c_void",
        "replace::zone_memalign(&HEAP, align, size)"),
    mac_fn!("malloc_zone_free", MallocZone, Expected, (_zone: *mut MallocZone, ptr: *mut c_void) -> "", "replace::free(&HEAP, &SYSTEM, ptr)"),
    mac_fn!("malloc_zone_batch_malloc", MallocZone, Optional,
        (_zone: *mut MallocZone, size: usize, results: *mut *mut c_void, count: u32) -> "u32",
        "replace::batch_malloc(&HEAP, size, results, count)"),
    mac_fn!("malloc_zone_batch_free", MallocZone, Optional, (_zone: *mut MallocZone, blocks: *mut *mut c_void, count: u32) -> "",
        "replace::batch_free(&HEAP, &SYSTEM, blocks, count)"),
    mac_fn!("malloc_zone_check", MallocZone, Optional, (_zone: *mut MallocZone) -> "i32", "1"),
    mac_fn!("malloc_zone_from_ptr", MallocZone, Expected, (ptr: *const c_void) -> "*mut MallocZone", "replace::zone_from_ptr(&ZONE, ptr)"),
    mac_fn!("malloc_zone_log", MallocZone, Optional, (_zone: *mut MallocZone, _address: *mut c_void) -> "", ""),
    mac_fn!("malloc_zone_print", MallocZone, Optional, (_zone: *mut MallocZone, _verbose: i32) -> "", ""),
    mac_fn!("malloc_zone_print_ptr_info", MallocZone, Optional, (_ptr: *mut c_void) -> "", ""),
    // Programs' own zones are not registered with libmalloc: ours serves them all.
    mac_fn!("malloc_zone_register", MallocZone, Optional, (_zone: *mut MallocZone) -> "", ""),
    mac_fn!("malloc_zone_unregister", MallocZone, Optional, (_zone: *mut MallocZone) -> "", ""),
    // Variadic in C; the format and arguments are ignored (libmalloc's allocates).
    mac_fn!("malloc_printf", MallocZone, Optional, (_format: *const u8) -> "", ""),
    // libSystem's fork calls these around fork(); ours hold the heap and run libmalloc's.
    mac_fn!("_malloc_fork_prepare", MallocFork, Expected, () -> "", "alloc8::macos::fork::prepare(&HEAP, &SYSTEM)"),
    mac_fn!("_malloc_fork_parent", MallocFork, Expected, () -> "", "alloc8::macos::fork::parent(&HEAP, &SYSTEM)"),
    mac_fn!("_malloc_fork_child", MallocFork, Expected, () -> "",
        "alloc8::macos::fork::child(&HEAP, &SYSTEM); alloc8::report::forked(crate::HEAP_NAME)"),
    // C++: on failure, libc++'s own operator (the original) runs the
    // new_handler loop and throws std::bad_alloc through our C-unwind frame.
    mac_cxx!("_Znwm", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::macos_cxx::new(size, crate::macos_cxx::next::_Znwm)", via "malloc"),
    mac_cxx!("_Znam", CxxNew, CUnwind, (size: usize) -> "*mut u8", "crate::macos_cxx::new(size, crate::macos_cxx::next::_Znam)", via "_Znwm"),
    mac_cxx!("_ZnwmRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::macos_cxx::new_nothrow(size, nothrow, crate::macos_cxx::next::_ZnwmRKSt9nothrow_t)", via "_Znwm"),
    mac_cxx!("_ZnamRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, nothrow: *const u8) -> "*mut u8",
        "crate::macos_cxx::new_nothrow(size, nothrow, crate::macos_cxx::next::_ZnamRKSt9nothrow_t)", via "_Znam"),
    mac_cxx!("_ZnwmSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::macos_cxx::new_aligned(size, align, crate::macos_cxx::next::_ZnwmSt11align_val_t)", via "aligned_alloc"),
    mac_cxx!("_ZnamSt11align_val_t", CxxNew, CUnwind, (size: usize, align: usize) -> "*mut u8",
        "crate::macos_cxx::new_aligned(size, align, crate::macos_cxx::next::_ZnamSt11align_val_t)", via "_ZnwmSt11align_val_t"),
    mac_cxx!("_ZnwmSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::macos_cxx::new_aligned_nothrow(size, align, nothrow, crate::macos_cxx::next::_ZnwmSt11align_val_tRKSt9nothrow_t)",
        via "_ZnwmSt11align_val_t"),
    mac_cxx!("_ZnamSt11align_val_tRKSt9nothrow_t", CxxNew, CUnwind, (size: usize, align: usize, nothrow: *const u8) -> "*mut u8",
        "crate::macos_cxx::new_aligned_nothrow(size, align, nothrow, crate::macos_cxx::next::_ZnamSt11align_val_tRKSt9nothrow_t)",
        via "_ZnamSt11align_val_t"),
    mac_cxx!("_ZdlPv", CxxDelete, C, (ptr: *mut c_void) -> "", "replace::free(&HEAP, &SYSTEM, ptr)", via "free"),
    mac_cxx!("_ZdaPv", CxxDelete, C, (ptr: *mut c_void) -> "", "replace::free(&HEAP, &SYSTEM, ptr)", via "_ZdlPv"),
    mac_cxx!("_ZdlPvm", CxxDelete, C, (ptr: *mut c_void, size: usize) -> "", "replace::free_sized(&HEAP, &SYSTEM, ptr, size)", via "_ZdlPv"),
    mac_cxx!("_ZdaPvm", CxxDelete, C, (ptr: *mut c_void, size: usize) -> "", "replace::free_sized(&HEAP, &SYSTEM, ptr, size)", via "_ZdaPv"),
    mac_cxx!("_ZdlPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut c_void, _nothrow: *const u8) -> "", "replace::free(&HEAP, &SYSTEM, ptr)", via "_ZdlPv"),
    mac_cxx!("_ZdaPvRKSt9nothrow_t", CxxDelete, C, (ptr: *mut c_void, _nothrow: *const u8) -> "", "replace::free(&HEAP, &SYSTEM, ptr)", via "_ZdaPv"),
    mac_cxx!("_ZdlPvSt11align_val_t", CxxDelete, C, (ptr: *mut c_void, _align: usize) -> "", "replace::free(&HEAP, &SYSTEM, ptr)", via "free"),
    mac_cxx!("_ZdaPvSt11align_val_t", CxxDelete, C, (ptr: *mut c_void, _align: usize) -> "", "replace::free(&HEAP, &SYSTEM, ptr)",
        via "_ZdlPvSt11align_val_t"),
    mac_cxx!("_ZdlPvmSt11align_val_t", CxxDelete, C, (ptr: *mut c_void, size: usize, _align: usize) -> "",
        "replace::free_sized(&HEAP, &SYSTEM, ptr, size)", via "_ZdlPvSt11align_val_t"),
    mac_cxx!("_ZdaPvmSt11align_val_t", CxxDelete, C, (ptr: *mut c_void, size: usize, _align: usize) -> "",
        "replace::free_sized(&HEAP, &SYSTEM, ptr, size)", via "_ZdaPvSt11align_val_t"),
    mac_cxx!("_ZdlPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut c_void, _align: usize, _nothrow: *const u8) -> "",
        "replace::free(&HEAP, &SYSTEM, ptr)", via "_ZdlPvSt11align_val_t"),
    mac_cxx!("_ZdaPvSt11align_val_tRKSt9nothrow_t", CxxDelete, C, (ptr: *mut c_void, _align: usize, _nothrow: *const u8) -> "",
        "replace::free(&HEAP, &SYSTEM, ptr)", via "_ZdaPvSt11align_val_t"),
    // `--threads`: Darwin has no RTLD_NEXT trick to need; the pair reaches libSystem's.
    mac_fn!("pthread_create", ThreadStart, Optional,
        (thread: *mut usize, attr: *const c_void, start: alloc8::macos::threads::Start, arg: *mut c_void) -> "i32",
        "HOOKS.create(&HEAP, thread, attr, start, arg)"),
    mac_fn!("pthread_exit", ThreadStart, Optional, (value: *mut c_void) -> "", "HOOKS.exit(&HEAP, value)"),
    // Windows, interpose mode: the CRT allocator's names (msvcrt.dll and the
    // UCRT alike). The DLL exports them for programs that link it; what takes
    // the CRT over is the inline hooks on the same functions in every CRT
    // module (templates/shim/src/windows/), which share these bodies.
    // Blocks the heap does not own go back to the CRT (foreign pointers).
    // Prefixed mode has no rows of its own: it is the portable C family.
    win_fn!("malloc", Malloc, Required, (size: usize) -> "*mut u8", "crate::windows::api::malloc_in(crate::windows::api::program(), size)"),
    win_fn!("free", Malloc, Required, (ptr: *mut u8) -> "", "crate::windows::api::free_in(crate::windows::api::program(), ptr)"),
    win_fn!("calloc", Malloc, Required, (count: usize, size: usize) -> "*mut u8", "crate::windows::api::calloc_in(crate::windows::api::program(), count, size)"),
    win_fn!("realloc", Malloc, Required, (ptr: *mut u8, size: usize) -> "*mut u8", "crate::windows::api::realloc_in(crate::windows::api::program(), ptr, size)"),
    win_fn!("_expand", Malloc, Expected, (ptr: *mut u8, size: usize) -> "*mut u8", "crate::windows::api::expand_in(crate::windows::api::program(), ptr, size)"),
    win_fn!("_recalloc", Malloc, Expected, (ptr: *mut u8, count: usize, size: usize) -> "*mut u8",
        "crate::windows::api::recalloc_in(crate::windows::api::program(), ptr, count, size)"),
    win_fn!("_strdup", Malloc, Optional, (s: *const u8) -> "*mut u8", "crate::windows::api::strdup_in(crate::windows::api::program(), s)"),
    win_fn!("_msize", UsableSize, Expected, (ptr: *mut u8) -> "usize", "crate::windows::api::msize_in(crate::windows::api::program(), ptr)"),
    win_fn!("_aligned_malloc", Aligned, Expected, (size: usize, align: usize) -> "*mut u8",
        "crate::windows::api::aligned_malloc_in(crate::windows::api::program(), size, align)"),
    win_fn!("_aligned_free", Aligned, Expected, (ptr: *mut u8) -> "", "crate::windows::api::aligned_free_in(crate::windows::api::program(), ptr)"),
    win_fn!("_aligned_realloc", Aligned, Expected, (ptr: *mut u8, size: usize, align: usize) -> "*mut u8",
        "crate::windows::api::aligned_realloc_in(crate::windows::api::program(), ptr, size, align)"),
    win_fn!("_aligned_msize", UsableSize, Expected, (ptr: *mut u8, align: usize, offset: usize) -> "usize",
        "crate::windows::api::aligned_msize_in(crate::windows::api::program(), ptr, align, offset)"),
];

/// What a shim built for `platform` in `mode` exports, with its exported names:
/// the whole table for that mode, less the thread hooks unless `threads`.
pub fn shim_exports(platform: Platform, mode: Mode, prefix: &str, threads: bool) -> Vec<(String, &'static Export)> {
    exports_for(platform, mode, prefix).into_iter().filter(|(_, e)| threads || e.family != Family::ThreadStart).collect()
}

/// Every symbol the table has for `platform` in `mode` (what `check` judges
/// a library against), with its exported names.
///
/// A Windows prefixed library is the same portable C API as Linux's
/// (`foo_malloc` ... `foo_malloc_usable_size`, one `foo.h`): Linux's rows.
pub fn exports_for(platform: Platform, mode: Mode, prefix: &str) -> Vec<(String, &'static Export)> {
    let rows = match (platform, mode) {
        // The prefixed family is the portable C one everywhere.
        (Platform::Windows | Platform::Macos, Mode::Prefixed) => Platform::Linux,
        _ => platform,
    };
    EXPORTS.iter().filter(|e| e.platforms.contains(&rows) && e.modes.contains(&mode)).map(|e| (exported_name(e, mode, prefix), e)).collect()
}

/// The platform whose rows a `platform` library of `mode` is judged by.
fn rows_for(platform: Platform, mode: Mode) -> Platform {
    let own = EXPORTS.iter().any(|e| e.platforms.contains(&platform) && e.modes.contains(&mode));
    if own {
        platform
    } else {
        Platform::Linux
    }
}

/// What `check` looks for in a `platform` library of `mode`: every family
/// checked there, hooks included.
///
/// A platform with rows of its own for `mode` (macOS interposition) is
/// judged by those; the others by Linux's, whose C names are everyone's.
pub fn checked(platform: Platform, mode: Mode) -> impl Iterator<Item = &'static Export> {
    let rows = rows_for(platform, mode);
    EXPORTS.iter().filter(move |e| e.platforms.contains(&rows) && e.family.checked_on(platform) && e.family.checked_in().contains(&mode))
}

/// The name of the dylib's own function that replaces `name` on macOS
/// (`alloc8_malloc`): the dylib must not define `malloc` itself, or ld64
/// resolves both slots of the interpose pair to it and dyld drops the pair.
pub fn replacement_name(name: &str) -> String {
    format!("alloc8_{}", name)
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
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_per_platform() {
        let mut seen = HashSet::new();
        for e in EXPORTS {
            for p in e.platforms {
                assert!(seen.insert((e.name, *p)), "{} listed twice for {:?}", e.name, p);
            }
        }
    }

    #[test]
    fn windows_interpose_has_the_crt_names_and_prefixed_the_portable_family() {
        let names: Vec<_> = exports_for(Platform::Windows, Mode::Interpose, "").into_iter().map(|(n, _)| n).collect();
        for n in [
            "malloc",
            "free",
            "calloc",
            "realloc",
            "_expand",
            "_recalloc",
            "_strdup",
            "_msize",
            "_aligned_malloc",
            "_aligned_free",
            "_aligned_realloc",
            "_aligned_msize",
        ] {
            assert!(names.iter().any(|x| x == n), "{} missing", n);
        }
        assert!(!names.iter().any(|n| n.starts_with("_Z") || n == "posix_memalign"));
        let prefixed: Vec<_> = exports_for(Platform::Windows, Mode::Prefixed, "foo").into_iter().map(|(n, _)| n).collect();
        let linux: Vec<_> = exports_for(Platform::Linux, Mode::Prefixed, "foo").into_iter().map(|(n, _)| n).collect();
        assert_eq!(prefixed, linux);
    }

    #[test]
    fn linux_interpose_has_the_c_family_and_all_twenty_cxx_operators() {
        let names: Vec<_> = exports_for(Platform::Linux, Mode::Interpose, "").into_iter().map(|(n, _)| n).collect();
        for c in [
            "malloc",
            "free",
            "calloc",
            "realloc",
            "reallocarray",
            "posix_memalign",
            "aligned_alloc",
            "memalign",
            "valloc",
            "pvalloc",
            "malloc_usable_size",
            "cfree",
        ] {
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
                let same = |name: &str| EXPORTS.iter().find(|x| x.name == name && x.platforms == e.platforms);
                let mut at = same(target).unwrap_or_else(|| panic!("{} forwards to unknown {}", e.name, target));
                // Each route ends at a row the system serves from its own heap (malloc, free...).
                while let Some(next) = at.via.first() {
                    assert!(seen.insert(at.name), "{} forwards in a circle", e.name);
                    at = same(next).unwrap();
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
    fn macos_interposes_the_anchors_set_and_no_typed_malloc() {
        let names: Vec<String> = shim_exports(Platform::Macos, Mode::Interpose, "", false).into_iter().map(|(n, _)| n).collect();
        for want in [
            "malloc",
            "free",
            "calloc",
            "realloc",
            "reallocf",
            "vfree",
            "valloc",
            "posix_memalign",
            "aligned_alloc",
            "malloc_size",
            "malloc_good_size",
            "malloc_create_zone",
            "malloc_default_zone",
            "malloc_default_purgeable_zone",
            "malloc_destroy_zone",
            "malloc_get_all_zones",
            "malloc_get_zone_name",
            "malloc_set_zone_name",
            "malloc_zone_malloc",
            "malloc_zone_calloc",
            "malloc_zone_valloc",
            "malloc_zone_realloc",
            "malloc_zone_memalign",
            "malloc_zone_free",
            "malloc_zone_batch_malloc",
            "malloc_zone_batch_free",
            "malloc_zone_check",
            "malloc_zone_from_ptr",
            "malloc_zone_log",
            "malloc_zone_print",
            "malloc_zone_print_ptr_info",
            "malloc_zone_register",
            "malloc_zone_unregister",
            "_malloc_fork_prepare",
            "_malloc_fork_parent",
            "_malloc_fork_child",
        ] {
            assert!(names.iter().any(|n| n == want), "{} missing", want);
        }
        assert_eq!(names.iter().filter(|n| n.starts_with("_Z")).count(), 20);
        assert!(!names.iter().any(|n| n.starts_with("malloc_type")), "typed malloc must stay libmalloc's");
        // glibc-only names have no macOS row.
        for absent in ["memalign", "pvalloc", "malloc_usable_size", "reallocarray", "cfree", "pthread_create"] {
            assert!(!names.iter().any(|n| n == absent), "{} on macOS", absent);
        }
        let threads: Vec<String> = shim_exports(Platform::Macos, Mode::Interpose, "", true).into_iter().map(|(n, _)| n).collect();
        assert_eq!(threads.len(), names.len() + 2);
        assert!(threads.contains(&"pthread_create".to_string()) && threads.contains(&"pthread_exit".to_string()));
        // The dylib's own names never collide with what it interposes.
        for n in &threads {
            assert_ne!(&replacement_name(n), n);
            assert!(!threads.contains(&replacement_name(n)));
        }
        let mac_prefixed: Vec<String> = exports_for(Platform::Macos, Mode::Prefixed, "p").into_iter().map(|(n, _)| n).collect();
        let linux_prefixed: Vec<String> = exports_for(Platform::Linux, Mode::Prefixed, "p").into_iter().map(|(n, _)| n).collect();
        assert_eq!(mac_prefixed, linux_prefixed);
        assert!(mac_prefixed.contains(&"p_malloc".to_string()));
    }

    #[test]
    fn check_judges_macos_by_its_own_rows_and_others_by_linuxs() {
        let mac: Vec<_> = checked(Platform::Macos, Mode::Interpose).collect();
        assert!(mac.iter().all(|e| e.platforms == MACOS));
        let names: Vec<_> = mac.iter().map(|e| e.name).collect();
        assert!(names.contains(&"malloc_size") && names.contains(&"_malloc_fork_child") && names.contains(&"_ZdlPv"));
        assert!(!names.contains(&"memalign") && !names.contains(&"pthread_create"));
        // No rows of its own for prefixed mode: Linux's C names. Windows interposers: the CRT's names.
        assert!(checked(Platform::Macos, Mode::Prefixed).any(|e| e.name == "malloc_usable_size"));
        assert!(checked(Platform::Windows, Mode::Interpose).all(|e| e.platforms == WINDOWS));
        assert!(checked(Platform::Windows, Mode::Prefixed).all(|e| e.platforms == LINUX));
    }

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(valid_prefix("foo") && valid_prefix("_x9") && valid_prefix("My_Heap"));
        for bad in ["", "9x", "foo-bar", "a b", "ü", "foo;"] {
            assert!(!valid_prefix(bad), "{:?}", bad);
        }
    }
}
