//! libmalloc's `malloc_zone_t`, `malloc_introspection_t` and
//! `malloc_statistics_t` (LP64), as `#[repr(C)]` mirrors.
//!
//! Offsets are those of libmalloc-792.41.1's `<malloc/malloc.h>` for x86_64
//! and arm64 (../shared/macos.md). Sizes are asserted at compile time here;
//! field offsets need pointer arithmetic in const context, which rustc 1.63
//! (this crate's floor) lacks, so [`offsets`] measures them with
//! `MaybeUninit` + `addr_of!` for the unit tests, and tests/macos_shim.rs and
//! the generated macOS shim pin them with `core::mem::offset_of!` at compile time.

use core::ffi::c_void;

pub type Zone = MallocZone;
/// `boolean_t` is an `int` on Darwin.
pub type Boolean = i32;
/// `kern_return_t`, `task_t` (a Mach port name) and `vm_address_t`.
pub type KernReturn = i32;
pub type Task = u32;
pub type VmAddress = usize;

/// The zone version the shim declares: every field up to and including
/// version 12 is filled in, so libmalloc finds no NULL it would call
/// (`reinit_lock` from 9, `claimed_address` from 10, `print_task` from 11,
/// `task_statistics` from 12). Version 13 would mean libmalloc expects
/// `try_free_default` and leaves errno to the zone; 16 adds the typed-malloc
/// entry points, which must not be taken over (macos.md).
pub const ZONE_VERSION: u32 = 12;

#[repr(C)]
pub struct MallocZone {
    pub reserved1: *mut c_void,
    pub reserved2: *mut c_void,
    pub size: Option<unsafe extern "C" fn(*mut Zone, *const c_void) -> usize>,
    pub malloc: Option<unsafe extern "C" fn(*mut Zone, usize) -> *mut c_void>,
    pub calloc: Option<unsafe extern "C" fn(*mut Zone, usize, usize) -> *mut c_void>,
    pub valloc: Option<unsafe extern "C" fn(*mut Zone, usize) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(*mut Zone, *mut c_void)>,
    pub realloc: Option<unsafe extern "C" fn(*mut Zone, *mut c_void, usize) -> *mut c_void>,
    pub destroy: Option<unsafe extern "C" fn(*mut Zone)>,
    pub zone_name: *const u8,
    pub batch_malloc: Option<unsafe extern "C" fn(*mut Zone, usize, *mut *mut c_void, u32) -> u32>,
    pub batch_free: Option<unsafe extern "C" fn(*mut Zone, *mut *mut c_void, u32)>,
    pub introspect: *const Introspection,
    pub version: u32,
    // v5
    pub memalign: Option<unsafe extern "C" fn(*mut Zone, usize, usize) -> *mut c_void>,
    // v6
    pub free_definite_size: Option<unsafe extern "C" fn(*mut Zone, *mut c_void, usize)>,
    // v8
    pub pressure_relief: Option<unsafe extern "C" fn(*mut Zone, usize) -> usize>,
    // v10
    pub claimed_address: Option<unsafe extern "C" fn(*mut Zone, *mut c_void) -> Boolean>,
    // v13 (internal to libmalloc; NULL at our version)
    pub try_free_default: Option<unsafe extern "C" fn(*mut Zone, *mut c_void)>,
    // v15
    pub malloc_with_options: Option<unsafe extern "C" fn(*mut Zone, usize, usize, u64) -> *mut c_void>,
    // v16: the typed entry points (trailing `malloc_type_id_t`); NULL at our version.
    pub malloc_type_malloc: Option<unsafe extern "C" fn(*mut Zone, usize, u64) -> *mut c_void>,
    pub malloc_type_calloc: Option<unsafe extern "C" fn(*mut Zone, usize, usize, u64) -> *mut c_void>,
    pub malloc_type_realloc: Option<unsafe extern "C" fn(*mut Zone, *mut c_void, usize, u64) -> *mut c_void>,
    pub malloc_type_memalign: Option<unsafe extern "C" fn(*mut Zone, usize, usize, u64) -> *mut c_void>,
    pub malloc_type_malloc_with_options: Option<unsafe extern "C" fn(*mut Zone, usize, usize, u64, u64) -> *mut c_void>,
}

/// `malloc_statistics_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    pub blocks_in_use: u32,
    pub size_in_use: usize,
    pub max_size_in_use: usize,
    pub size_allocated: usize,
}

/// `vm_range_recorder_t` and `memory_reader_t` (only passed through).
pub type Recorder = Option<unsafe extern "C" fn(Task, *mut c_void, u32, *mut c_void, u32)>;
pub type Reader = Option<unsafe extern "C" fn(Task, VmAddress, usize, *mut *mut c_void) -> KernReturn>;

#[repr(C)]
pub struct Introspection {
    pub enumerator: Option<unsafe extern "C" fn(Task, *mut c_void, u32, VmAddress, Reader, Recorder) -> KernReturn>,
    pub good_size: Option<unsafe extern "C" fn(*mut Zone, usize) -> usize>,
    pub check: Option<unsafe extern "C" fn(*mut Zone) -> Boolean>,
    pub print: Option<unsafe extern "C" fn(*mut Zone, Boolean)>,
    pub log: Option<unsafe extern "C" fn(*mut Zone, *mut c_void)>,
    pub force_lock: Option<unsafe extern "C" fn(*mut Zone)>,
    pub force_unlock: Option<unsafe extern "C" fn(*mut Zone)>,
    pub statistics: Option<unsafe extern "C" fn(*mut Zone, *mut Statistics)>,
    pub zone_locked: Option<unsafe extern "C" fn(*mut Zone) -> Boolean>,
    // v7
    pub enable_discharge_checking: Option<unsafe extern "C" fn(*mut Zone) -> Boolean>,
    pub disable_discharge_checking: Option<unsafe extern "C" fn(*mut Zone)>,
    pub discharge: Option<unsafe extern "C" fn(*mut Zone, *mut c_void)>,
    /// Takes a block (`void (^)(void *, void *)`): only a pointer here.
    pub enumerate_discharged_pointers: Option<unsafe extern "C" fn(*mut Zone, *mut c_void)>,
    // v9
    pub reinit_lock: Option<unsafe extern "C" fn(*mut Zone)>,
    // v11
    pub print_task: Option<unsafe extern "C" fn(Task, u32, VmAddress, Reader, *mut c_void)>,
    // v12
    pub task_statistics: Option<unsafe extern "C" fn(Task, VmAddress, Reader, *mut Statistics)>,
    // v14
    pub zone_type: u32,
}

const _: () = assert!(core::mem::size_of::<MallocZone>() == 200);
const _: () = assert!(core::mem::size_of::<Introspection>() == 136);
const _: () = assert!(core::mem::size_of::<Statistics>() == 32);

/// Byte offset of a field, measured on an uninitialised value (no reference
/// to uninitialised memory is made: `addr_of!` takes the raw address).
macro_rules! offset {
    ($ty:ty, $field:ident) => {{
        let value = core::mem::MaybeUninit::<$ty>::uninit();
        let base = value.as_ptr();
        #[allow(unused_unsafe)]
        let field = unsafe { core::ptr::addr_of!((*base).$field) };
        field as *const u8 as usize - base as *const u8 as usize
    }};
}

/// Every field's (name, measured offset, contract offset), for the tests.
pub fn offsets() -> [(&'static str, usize, usize); 34] {
    [
        ("zone.size", offset!(MallocZone, size), 16),
        ("zone.malloc", offset!(MallocZone, malloc), 24),
        ("zone.calloc", offset!(MallocZone, calloc), 32),
        ("zone.valloc", offset!(MallocZone, valloc), 40),
        ("zone.free", offset!(MallocZone, free), 48),
        ("zone.realloc", offset!(MallocZone, realloc), 56),
        ("zone.destroy", offset!(MallocZone, destroy), 64),
        ("zone.zone_name", offset!(MallocZone, zone_name), 72),
        ("zone.batch_malloc", offset!(MallocZone, batch_malloc), 80),
        ("zone.batch_free", offset!(MallocZone, batch_free), 88),
        ("zone.introspect", offset!(MallocZone, introspect), 96),
        ("zone.version", offset!(MallocZone, version), 104),
        ("zone.memalign", offset!(MallocZone, memalign), 112),
        ("zone.free_definite_size", offset!(MallocZone, free_definite_size), 120),
        ("zone.pressure_relief", offset!(MallocZone, pressure_relief), 128),
        ("zone.claimed_address", offset!(MallocZone, claimed_address), 136),
        ("zone.try_free_default", offset!(MallocZone, try_free_default), 144),
        ("zone.malloc_with_options", offset!(MallocZone, malloc_with_options), 152),
        ("zone.malloc_type_malloc", offset!(MallocZone, malloc_type_malloc), 160),
        ("zone.malloc_type_malloc_with_options", offset!(MallocZone, malloc_type_malloc_with_options), 192),
        ("introspect.good_size", offset!(Introspection, good_size), 8),
        ("introspect.force_lock", offset!(Introspection, force_lock), 40),
        ("introspect.force_unlock", offset!(Introspection, force_unlock), 48),
        ("introspect.statistics", offset!(Introspection, statistics), 56),
        ("introspect.zone_locked", offset!(Introspection, zone_locked), 64),
        ("introspect.enable_discharge_checking", offset!(Introspection, enable_discharge_checking), 72),
        ("introspect.enumerate_discharged_pointers", offset!(Introspection, enumerate_discharged_pointers), 96),
        ("introspect.reinit_lock", offset!(Introspection, reinit_lock), 104),
        ("introspect.print_task", offset!(Introspection, print_task), 112),
        ("introspect.task_statistics", offset!(Introspection, task_statistics), 120),
        ("introspect.zone_type", offset!(Introspection, zone_type), 128),
        ("statistics.size_in_use", offset!(Statistics, size_in_use), 8),
        ("statistics.max_size_in_use", offset!(Statistics, max_size_in_use), 16),
        ("statistics.size_allocated", offset!(Statistics, size_allocated), 24),
    ]
}
