//! Taking over the C runtimes: every CRT module present when the DLL
//! loads, and every one loaded later (LoadLibrary* is wrapped in the
//! import tables of the program's modules, never in kernel32, kernelbase,
//! ntdll or this DLL, whose own calls must reach the real loader).
//!
//! Per module, in this order: the heap is ready (const-initialised), all
//! trampolines are built and the originals stored, then the patches go
//! live, the functions that free or measure blocks before those that
//! allocate, so no block of the heap can reach an unhooked free.

use super::api::{self, ORIGINALS, SLOTS};
use super::patch::{self, Page, Prepared};
use alloc8::sync::SpinLock;
use alloc8::win::*;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The C runtimes whose allocator is taken over, by module name.
const CRTS: &[&str] = &[
    "msvcrt.dll",
    "ucrtbase.dll",
    "msvcr120.dll",
    "msvcr110.dll",
    "msvcr100.dll",
    "msvcr90.dll",
    "msvcr80.dll",
    "msvcr71.dll",
    "msvcr70.dll",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Free,
    Realloc,
    Msize,
    Expand,
    Recalloc,
    AlignedFree,
    AlignedRealloc,
    AlignedMsize,
    Malloc,
    Calloc,
    Strdup,
    AlignedMalloc,
    New,
}

impl Role {
    /// Frees and size queries: if one of these cannot be hooked, heap blocks
    /// could reach the CRT, so the module is left alone altogether.
    fn essential(self) -> bool {
        matches!(
            self,
            Role::Free | Role::Realloc | Role::Msize | Role::Expand | Role::Recalloc | Role::AlignedFree | Role::AlignedRealloc | Role::AlignedMsize
        )
    }
}

/// What is hooked, in the order hooks go live. `_base` names are the UCRT's
/// internal entry points (its own code calls them); `??2`/`??3`/`??_U`/`??_V`
/// are MSVC's operator new/delete/new[]/delete[] where a CRT exports them.
const TARGETS: &[(&[u8], Role)] = &[
    (b"free\0", Role::Free),
    (b"_free_base\0", Role::Free),
    (b"??3@YAXPEAX@Z\0", Role::Free),
    (b"??_V@YAXPEAX@Z\0", Role::Free),
    (b"realloc\0", Role::Realloc),
    (b"_realloc_base\0", Role::Realloc),
    (b"_msize\0", Role::Msize),
    (b"_msize_base\0", Role::Msize),
    (b"_expand\0", Role::Expand),
    (b"_expand_base\0", Role::Expand),
    (b"_recalloc\0", Role::Recalloc),
    (b"_recalloc_base\0", Role::Recalloc),
    (b"_aligned_free\0", Role::AlignedFree),
    (b"_aligned_realloc\0", Role::AlignedRealloc),
    (b"_aligned_msize\0", Role::AlignedMsize),
    (b"malloc\0", Role::Malloc),
    (b"_malloc_base\0", Role::Malloc),
    (b"calloc\0", Role::Calloc),
    (b"_calloc_base\0", Role::Calloc),
    (b"_strdup\0", Role::Strdup),
    (b"strdup\0", Role::Strdup),
    (b"_aligned_malloc\0", Role::AlignedMalloc),
    (b"??2@YAPEAX_K@Z\0", Role::New),
    (b"??_U@YAPEAX_K@Z\0", Role::New),
];

macro_rules! per_slot {
    ($k:expr, $f:ident) => {
        match $k {
            0 => api::$f::<0> as usize,
            1 => api::$f::<1> as usize,
            2 => api::$f::<2> as usize,
            3 => api::$f::<3> as usize,
            4 => api::$f::<4> as usize,
            5 => api::$f::<5> as usize,
            6 => api::$f::<6> as usize,
            _ => api::$f::<7> as usize,
        }
    };
}

/// The replacement a hook of `role` in the CRT of slot `k` jumps to.
fn replacement(role: Role, k: usize) -> usize {
    match role {
        Role::Free => per_slot!(k, free),
        Role::Realloc => per_slot!(k, realloc),
        Role::Msize => per_slot!(k, msize),
        Role::Expand => per_slot!(k, expand),
        Role::Recalloc => per_slot!(k, recalloc),
        Role::AlignedFree => per_slot!(k, aligned_free),
        Role::AlignedRealloc => per_slot!(k, aligned_realloc),
        Role::AlignedMsize => per_slot!(k, aligned_msize),
        Role::New => per_slot!(k, new),
        Role::Malloc => api::malloc as usize,
        Role::Calloc => api::calloc as usize,
        Role::Strdup => api::strdup as usize,
        Role::AlignedMalloc => api::aligned_malloc as usize,
    }
}

/// Hooked modules by slot (their handles; 0: free slot).
static HOOKED: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
/// The name index (into CRTS) of each slot's module, for the report.
static NAMES: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
pub static HOOKS: AtomicU64 = AtomicU64::new(0);
pub static REFUSED: AtomicU64 = AtomicU64::new(0);
/// Set once malloc of some CRT is hooked: the "bound" of the load report.
pub static MALLOC_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Serialises taking over modules (DllMain and every LoadLibrary after it).
static LOCK: SpinLock<()> = SpinLock::new(());

/// This DLL's own module handle.
pub static SELF: AtomicUsize = AtomicUsize::new(0);

/// Hooks every CRT module loaded now that is not hooked yet, then wraps
/// LoadLibrary* in every module's imports so later ones follow.
pub unsafe fn take_over() {
    LOCK.lock();
    for (i, name) in CRTS.iter().enumerate() {
        let mut z = [0u8; 32];
        z[..name.len()].copy_from_slice(name.as_bytes());
        let module = GetModuleHandleA(z.as_ptr()) as usize;
        if module == 0 || HOOKED.iter().any(|m| m.load(Relaxed) == module) {
            continue;
        }
        let slot = match HOOKED.iter().position(|m| m.load(Relaxed) == 0) {
            Some(s) => s,
            None => break,
        };
        if hook_module(module, slot) {
            HOOKED[slot].store(module, Relaxed);
            NAMES[slot].store(i, Relaxed);
        }
    }
    wrap_loaders();
    LOCK.unlock();
}

/// Names of the hooked CRT modules, for the report.
pub fn hooked_names(out: &mut [&'static str; SLOTS]) -> usize {
    let mut n = 0;
    for k in 0..SLOTS {
        if HOOKED[k].load(Relaxed) != 0 {
            out[n] = CRTS[NAMES[k].load(Relaxed)];
            n += 1;
        }
    }
    n
}

unsafe fn hook_module(module: usize, k: usize) -> bool {
    let mut page = match Page::near(module) {
        Some(p) => p,
        None => return false,
    };
    const NO_HOOK: Option<(Prepared, Role)> = None;
    let mut prepared = [NO_HOOK; 32];
    let mut n = 0;
    for (name, role) in TARGETS {
        let target = GetProcAddress(module as *mut c_void, name.as_ptr()) as usize;
        if target == 0 || prepared[..n].iter().flatten().any(|(p, _)| p.target == target) {
            continue; // absent, or an alias of a function already hooked
        }
        match patch::prepare(target, replacement(*role, k), &mut page) {
            Some(p) => {
                prepared[n] = Some((p, *role));
                n += 1;
            }
            None if role.essential() => {
                REFUSED.fetch_add(1, Relaxed);
                return false;
            }
            None => {
                REFUSED.fetch_add(1, Relaxed);
            }
        }
    }
    // Originals before any patch: the replacements need them from the first call.
    let slot = &ORIGINALS[k];
    for (p, role) in prepared[..n].iter().flatten() {
        let field = match role {
            Role::Free => &slot.free,
            Role::Msize => &slot.msize,
            Role::Expand => &slot.expand,
            Role::AlignedFree => &slot.aligned_free,
            Role::AlignedMsize => &slot.aligned_msize,
            Role::New => &slot.new,
            _ => continue,
        };
        if field.load(Relaxed) == 0 {
            field.store(p.trampoline, Relaxed);
        }
    }
    for (p, role) in prepared[..n].iter().flatten() {
        if patch::apply(p) {
            HOOKS.fetch_add(1, Relaxed);
            if *role == Role::Malloc {
                MALLOC_LIVE.store(1, Relaxed);
            }
        }
    }
    true
}

// ---- LoadLibrary*, wrapped in import tables ----

type LoadA = unsafe extern "system" fn(*const u8) -> Module;
type LoadW = unsafe extern "system" fn(*const u16) -> Module;
type LoadExA = unsafe extern "system" fn(*const u8, Handle, u32) -> Module;
type LoadExW = unsafe extern "system" fn(*const u16, Handle, u32) -> Module;

static REAL: [AtomicUsize; 4] = [ZERO; 4];
const LOADERS: [&[u8]; 4] = [b"LoadLibraryA\0", b"LoadLibraryW\0", b"LoadLibraryExA\0", b"LoadLibraryExW\0"];

unsafe extern "system" fn load_a(name: *const u8) -> Module {
    let m = core::mem::transmute::<usize, LoadA>(REAL[0].load(Relaxed))(name);
    take_over();
    m
}
unsafe extern "system" fn load_w(name: *const u16) -> Module {
    let m = core::mem::transmute::<usize, LoadW>(REAL[1].load(Relaxed))(name);
    take_over();
    m
}
unsafe extern "system" fn load_ex_a(name: *const u8, file: Handle, flags: u32) -> Module {
    let m = core::mem::transmute::<usize, LoadExA>(REAL[2].load(Relaxed))(name, file, flags);
    take_over();
    m
}
unsafe extern "system" fn load_ex_w(name: *const u16, file: Handle, flags: u32) -> Module {
    let m = core::mem::transmute::<usize, LoadExW>(REAL[3].load(Relaxed))(name, file, flags);
    take_over();
    m
}

fn wrappers() -> [usize; 4] {
    [load_a as usize, load_w as usize, load_ex_a as usize, load_ex_w as usize]
}

/// Points every module's LoadLibrary* imports at the wrappers above.
unsafe fn wrap_loaders() {
    let kernel32 = GetModuleHandleA(b"kernel32.dll\0".as_ptr());
    if REAL[0].load(Relaxed) == 0 {
        for (i, name) in LOADERS.iter().enumerate() {
            REAL[i].store(GetProcAddress(kernel32, name.as_ptr()) as usize, Relaxed);
        }
    }
    if REAL.iter().any(|r| r.load(Relaxed) == 0) {
        return;
    }
    let never = [
        kernel32 as usize,
        GetModuleHandleA(b"kernelbase.dll\0".as_ptr()) as usize,
        GetModuleHandleA(b"ntdll.dll\0".as_ptr()) as usize,
        SELF.load(Relaxed),
    ];
    let mut modules = [core::ptr::null_mut(); 512];
    let mut needed = 0u32;
    if K32EnumProcessModules(GetCurrentProcess(), modules.as_mut_ptr(), core::mem::size_of_val(&modules) as u32, &mut needed) == 0 {
        return;
    }
    let count = (needed as usize / core::mem::size_of::<Module>()).min(modules.len());
    for &m in &modules[..count] {
        if !m.is_null() && !never.contains(&(m as usize)) {
            patch_imports(m as usize);
        }
    }
}

unsafe fn rd32(at: usize) -> u32 {
    (at as *const u32).read_unaligned()
}

/// Rewrites the import address table entries named LoadLibrary* of one module.
unsafe fn patch_imports(base: usize) {
    if (base as *const u16).read() != 0x5A4D {
        return; // "MZ"
    }
    let nt = base + rd32(base + 0x3C) as usize;
    if rd32(nt) != 0x4550 || (nt as *const u16).add(12).read() != 0x20B {
        return; // "PE\0\0", PE32+
    }
    // Optional header at nt+24; data directory 1 (imports) at +120.
    let dir = nt + 24 + 120;
    let (rva, size) = (rd32(dir) as usize, rd32(dir + 4) as usize);
    if rva == 0 || size == 0 {
        return;
    }
    let wrappers = wrappers();
    let mut desc = base + rva;
    loop {
        let (lookup, first) = (rd32(desc) as usize, rd32(desc + 16) as usize);
        if first == 0 {
            break;
        }
        let names = if lookup != 0 { lookup } else { first };
        let mut i = 0;
        loop {
            let entry = ((base + names) as *const u64).add(i).read();
            if entry == 0 {
                break;
            }
            if entry >> 63 == 0 {
                let name = (base + (entry as usize & 0x7FFF_FFFF) + 2) as *const u8;
                for (j, want) in LOADERS.iter().enumerate() {
                    if c_eq(name, want) {
                        let slot = ((base + first) as *mut usize).add(i);
                        if slot.read() != wrappers[j] {
                            let mut old = 0u32;
                            if VirtualProtect(slot as *mut c_void, 8, PAGE_READWRITE, &mut old) != 0 {
                                slot.write(wrappers[j]);
                                VirtualProtect(slot as *mut c_void, 8, old, &mut old);
                            }
                        }
                    }
                }
            }
            i += 1;
        }
        desc += 20;
    }
}

unsafe fn c_eq(mut a: *const u8, b: &[u8]) -> bool {
    for &c in b {
        if *a != c {
            return false;
        }
        if c == 0 {
            return true;
        }
        a = a.add(1);
    }
    false
}
