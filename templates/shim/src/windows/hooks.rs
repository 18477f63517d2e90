//! Taking over the C runtimes: every CRT module present when the DLL
//! loads, and every one loaded later. Later loads are seen through the
//! loader's DLL notifications (LdrRegisterDllNotification, Vista and later,
//! and wine): every load by any path (LoadLibrary*, a DLL's imports), in
//! the loader, before the new module's DllMain runs. Wrapping LoadLibrary*
//! in import tables instead was tried and missed a program that holds the
//! import's address in a register across two calls (gcc -O2 does).
//! Nothing but CRT modules is ever patched: never kernel32, kernelbase,
//! ntdll or this DLL.
//!
//! Locking: `take_over` runs only in DllMain and `on_load` only in the
//! loader, both under the loader lock, so LOCK never waits on a thread that
//! waits for the loader.
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
        Role::Malloc => per_slot!(k, malloc),
        Role::Calloc => per_slot!(k, calloc),
        Role::Strdup => per_slot!(k, strdup),
        Role::AlignedMalloc => per_slot!(k, aligned_malloc),
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
/// Set once malloc of some CRT is hooked.
static MALLOC_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Serialises taking over modules (DllMain and the loader notifications).
static LOCK: SpinLock<()> = SpinLock::new(());

/// Whether later loads are watched through loader notifications (the report says).
pub static NOTIFIED: AtomicUsize = AtomicUsize::new(0);

/// Hooks every CRT module loaded now, then watches for later ones.
pub unsafe fn take_over() {
    LOCK.lock();
    for (i, name) in CRTS.iter().enumerate() {
        let mut z = [0u8; 32];
        z[..name.len()].copy_from_slice(name.as_bytes());
        let module = GetModuleHandleA(z.as_ptr()) as usize;
        if module != 0 {
            take_module(module, i);
        }
    }
    if NOTIFIED.load(Relaxed) == 0 {
        watch_loads();
    }
    LOCK.unlock();
}

/// Hooks one CRT module (index `i` in CRTS) into a free slot, once.
unsafe fn take_module(module: usize, i: usize) {
    if HOOKED.iter().any(|m| m.load(Relaxed) == module) {
        return;
    }
    let slot = match HOOKED.iter().position(|m| m.load(Relaxed) == 0) {
        Some(s) => s,
        None => return,
    };
    if hook_module(module, slot) {
        HOOKED[slot].store(module, Relaxed);
        NAMES[slot].store(i, Relaxed);
    }
}

// ---- Loader notifications ----

#[repr(C)]
struct UnicodeString {
    len: u16,
    cap: u16,
    buf: *const u16,
}

#[repr(C)]
struct NotificationData {
    flags: u32,
    full_name: *const UnicodeString,
    base_name: *const UnicodeString,
    base: *mut c_void,
    size: u32,
}

type Notify = unsafe extern "system" fn(u32, *const NotificationData, *mut c_void);
type Register = unsafe extern "system" fn(u32, Notify, *mut c_void, *mut *mut c_void) -> i32;
const LDR_DLL_NOTIFICATION_REASON_LOADED: u32 = 1;

/// Without the notification API (before Vista), CRTs loaded later are not taken over.
unsafe fn watch_loads() {
    let ntdll = GetModuleHandleA(b"ntdll.dll\0".as_ptr());
    let register = GetProcAddress(ntdll, b"LdrRegisterDllNotification\0".as_ptr());
    if register.is_null() {
        return;
    }
    let mut cookie = core::ptr::null_mut();
    if core::mem::transmute::<*mut c_void, Register>(register)(0, on_load, core::ptr::null_mut(), &mut cookie) >= 0 {
        NOTIFIED.store(1, Relaxed);
    }
}

/// Runs inside the loader (its lock held) once a module is mapped, before
/// its DllMain: a CRT loaded now is hooked before it runs any code.
unsafe extern "system" fn on_load(reason: u32, data: *const NotificationData, _: *mut c_void) {
    if reason != LDR_DLL_NOTIFICATION_REASON_LOADED || data.is_null() || (*data).base_name.is_null() {
        return;
    }
    let name = &*(*data).base_name;
    let name = core::slice::from_raw_parts(name.buf, name.len as usize / 2);
    if let Some(i) = CRTS.iter().position(|c| eq_ignore_case(name, c.as_bytes())) {
        LOCK.lock();
        take_module((*data).base as usize, i);
        LOCK.unlock();
    }
}

fn eq_ignore_case(wide: &[u16], ascii: &[u8]) -> bool {
    wide.len() == ascii.len() && wide.iter().zip(ascii).all(|(w, a)| *w < 128 && (*w as u8).eq_ignore_ascii_case(a))
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
    const NO_HOOK: Option<(Prepared, Role, bool)> = None;
    let mut prepared = [NO_HOOK; 32];
    let mut n = 0;
    for (name, role) in TARGETS {
        let target = GetProcAddress(module as *mut c_void, name.as_ptr()) as usize;
        if target == 0 || prepared[..n].iter().flatten().any(|(p, _, _)| p.target == target) {
            continue; // absent, or an alias of a function already hooked
        }
        match patch::prepare(target, replacement(*role, k), &mut page) {
            Some(p) => {
                prepared[n] = Some((p, *role, name.ends_with(b"_base\0")));
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
    // Originals before any patch: the replacements need them from the first
    // call. The UCRT's `_base` function is the one that does the work (its
    // `free` calls `_free_base`, which is hooked too): taking `free`'s
    // trampoline as the original would come straight back to the hook.
    let slot = &ORIGINALS[k];
    slot.errno.store(GetProcAddress(module as *mut c_void, b"_errno\0".as_ptr()) as usize, Relaxed);
    for (p, role, base) in prepared[..n].iter().flatten() {
        let field = match role {
            Role::Free => &slot.free,
            Role::Msize => &slot.msize,
            Role::Expand => &slot.expand,
            Role::AlignedFree => &slot.aligned_free,
            Role::AlignedMsize => &slot.aligned_msize,
            Role::New => &slot.new,
            _ => continue,
        };
        if field.load(Relaxed) == 0 || *base {
            field.store(p.trampoline, Relaxed);
        }
    }
    let hooks = prepared[..n].iter().flatten().map(|(p, _, _)| p);
    let applied = patch::apply_all(hooks, patch::freeze());
    HOOKS.fetch_add(applied as u64, Relaxed);
    if applied > 0 && prepared[..n].iter().flatten().any(|(_, role, _)| *role == Role::Malloc) {
        MALLOC_LIVE.store(1, Relaxed);
    }
    true
}

/// The "bound" of the load report: the C runtime the program itself imports
/// (msvcrt, the UCRT through api-ms-win-crt-*, an msvcr*) has its malloc
/// hooked. A program with no CRT of ours (MSVC's static /MT CRT, or none)
/// gets `false` even though the DLL's own msvcrt.dll was taken over.
pub unsafe fn program_bound() -> bool {
    if MALLOC_LIVE.load(Relaxed) == 0 {
        return false;
    }
    let base = GetModuleHandleA(core::ptr::null()) as usize;
    let rd32 = |at: usize| (at as *const u32).read_unaligned() as usize;
    if base == 0 || (base as *const u16).read() != 0x5A4D {
        return false; // "MZ"
    }
    let nt = base + rd32(base + 0x3C);
    if rd32(nt) != 0x4550 || (nt as *const u16).add(12).read() != 0x20B {
        return false; // "PE\0\0", PE32+
    }
    // Optional header at nt+24; data directory 1 (imports) at +120.
    let imports = rd32(nt + 24 + 120);
    if imports == 0 {
        return false;
    }
    let mut desc = base + imports;
    while rd32(desc + 16) != 0 {
        let name = (base + rd32(desc + 12)) as *const u8;
        let mut len = 0;
        while *name.add(len) != 0 {
            len += 1;
        }
        let name = core::slice::from_raw_parts(name, len);
        let crt = if name.len() > 15 && name[..15].eq_ignore_ascii_case(b"api-ms-win-crt-") {
            CRTS.iter().position(|c| *c == "ucrtbase.dll")
        } else {
            CRTS.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        };
        if let Some(i) = crt {
            let mut z = [0u8; 32];
            z[..CRTS[i].len()].copy_from_slice(CRTS[i].as_bytes());
            let module = GetModuleHandleA(z.as_ptr()) as usize;
            if let Some(slot) = HOOKED.iter().position(|m| module != 0 && m.load(Relaxed) == module) {
                // The DLL's exports (a program that links it) hand foreign blocks to this CRT.
                api::PROGRAM.store(slot, Relaxed);
                return true;
            }
        }
        desc += 20;
    }
    false
}
