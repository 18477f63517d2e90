//! The trait a heap implements. Everything else (the malloc family, C++ operators,
//! alignment rules, errno, fork safety) is the shim's job.

/// A heap that alloc8 can turn into the process allocator.
///
/// The shim guarantees what it passes in, so the heap need not re-check:
/// `malloc` and `memalign` are never asked for 0 bytes, `memalign` only for a
/// power-of-two alignment above 16 (smaller ones are served by `malloc`) and
/// not above [`Heap::MAX_ALIGN`] (larger ones are served around the heap), and
/// `free`/`get_size`/`realloc` only see non-NULL pointers this heap returned;
/// no size or alignment it is asked for exceeds [`Heap::MAX_SIZE`].
/// A heap that handles 0 bytes or NULL itself says so ([`Heap::ALLOCATES_ZERO`],
/// [`Heap::FREES_NULL`]) and the shim drops the test it would make.
///
/// A heap must return memory aligned to 16 bytes from `malloc` (or, with
/// [`Heap::FUNDAMENTAL_ALIGNMENT`], to its size's largest power of two up to 16), return NULL when
/// it cannot allocate, and never panic or allocate through the Rust global
/// allocator while its own lock is held (the shim routes Rust's allocator to it).
pub trait Heap: Sync {
    /// Set to `true` if `free` never changes `errno`; the shim then skips saving it.
    const PRESERVES_ERRNO: bool = false;

    /// Set to `true` if the heap itself sets `errno = ENOMEM` whenever an
    /// allocation returns NULL (glibc and mimalloc do); the shim then returns
    /// the heap's result as is, with no check of its own (a plain tail call).
    const SETS_ENOMEM: bool = false;

    /// Set to `true` if `malloc(0)`, `calloc(0)` and `memalign(align, 0)`
    /// return a unique block that can be freed (as mimalloc's do); the shim
    /// then passes 0 on instead of asking for 1 byte.
    const ALLOCATES_ZERO: bool = false;

    /// Set to `true` if `free`, `free_sized` and `free_aligned_sized` take
    /// NULL and do nothing (as C's `free` does); the shim then calls them
    /// without a NULL test of its own.
    const FREES_NULL: bool = false;

    /// Set to `true` if `malloc`, `calloc` and `realloc` align each block
    /// only as the C standard asks (C17 7.22.3, fundamental alignment): to
    /// the largest power of two not above its size, up to 16. An 8-byte
    /// block needs only 8-byte alignment, as mimalloc, jemalloc and tcmalloc
    /// give, so such a heap can hand out an 8-byte class as it is. The shim
    /// then asks `malloc` for at least `align` bytes when a caller wants a
    /// smaller block aligned to 16 or less (memalign, aligned new, Rust's
    /// allocator), and `alloc8 test` checks each block by its size. Without
    /// it every block must be 16-byte aligned.
    const FUNDAMENTAL_ALIGNMENT: bool = false;

    /// The largest size the heap is asked for, and the largest alignment:
    /// the shim answers a larger request (malloc, calloc's product, realloc,
    /// every aligned form, pvalloc after rounding) with NULL and ENOMEM
    /// without calling the heap. The default is what the target's address
    /// space can hold at all ([`crate::shim::ADDRESS_SPACE_MAX`]: 2^47 - 1
    /// on x86-64), so a heap never sees a size that wraps when it adds a
    /// header or rounds to a class, and never has to notice that mapping
    /// 2^59 bytes cannot work. A heap that serves only smaller blocks (a
    /// fixed arena, size classes up to some bound, a heap that aborts
    /// beyond one) declares its bound; one that checks every size itself
    /// may set `usize::MAX`, and the shim then makes no compare.
    const MAX_SIZE: usize = crate::shim::ADDRESS_SPACE_MAX;

    /// The largest request [`Heap::malloc_small`] serves (at most
    /// [`Heap::MAX_SIZE`]). A Linux interposing shim tests a malloc's size
    /// against a variable that holds `SMALL_MAX + 1` while it serves calls
    /// and 0 while they must leave the fast path (loaded late, recording,
    /// the first call): one compare decides both, where the shim would
    /// otherwise test its state and the heap its size class. The default,
    /// `MAX_SIZE`, makes that compare the shim's size bound.
    const SMALL_MAX: usize = Self::MAX_SIZE;

    /// The largest request [`Heap::malloc_large`] serves (from
    /// [`Heap::SMALL_MAX`] to [`Heap::MAX_SIZE`]). The same shim tests a
    /// request that is not small against a second variable, `LARGE_MAX + 1`
    /// while it serves calls and 0 otherwise, and sends one below it to
    /// `malloc_large`: a heap whose larger requests need no setup or test
    /// of its own below some size (mimalloc: its generic path, below the
    /// 4 GiB it checks against the machine) is then reached in two compares
    /// more. The default, `SMALL_MAX`, leaves the second compare out.
    const LARGE_MAX: usize = Self::SMALL_MAX;

    /// The largest alignment `memalign` honours: a power of two of at least
    /// 16, or `usize::MAX` (the default: every alignment). The shim serves a
    /// larger one itself ([`crate::overaligned`]): it asks `memalign` for
    /// `MAX_ALIGN` and `align - MAX_ALIGN` more bytes, hands out the aligned
    /// address inside and keeps it in a side table, so `free`, `realloc`,
    /// `get_size` and the sized frees still get only pointers the heap
    /// returned. A heap whose aligned blocks come from size classes or
    /// page-aligned mappings (DieHard: 4096) declares its bound; then every
    /// free tests a pointer's low bits (2 instructions) and looks up the
    /// rare one aligned to more than `MAX_ALIGN`. Without a limit the shim
    /// adds nothing.
    const MAX_ALIGN: usize = usize::MAX;

    /// Allocates at least `size` (>= 1, or 0 with [`Heap::ALLOCATES_ZERO`])
    /// bytes, 16-byte aligned (see [`Heap::FUNDAMENTAL_ALIGNMENT`]), or returns NULL.
    fn malloc(&self, size: usize) -> *mut u8;

    /// `malloc` for a request of at most [`Heap::SMALL_MAX`] bytes: a heap's
    /// fast path without its own size test. Called only once `malloc` has
    /// returned in this process, so a heap that sets something up on its
    /// first call (mimalloc's error callback) has done so. The default is `malloc`.
    #[inline(always)]
    fn malloc_small(&self, size: usize) -> *mut u8 {
        self.malloc(size)
    }

    /// `malloc` for a request of at most [`Heap::LARGE_MAX`] bytes, once
    /// `malloc` has returned in this process, as `malloc_small`: the shim
    /// sends it those above `SMALL_MAX` (and, while another thread opens the
    /// fast path, rarely a small one). The default is `malloc`.
    #[inline(always)]
    fn malloc_large(&self, size: usize) -> *mut u8 {
        self.malloc(size)
    }

    /// The heap's `free` as a C function that keeps free's whole contract
    /// itself: NULL does nothing ([`Heap::FREES_NULL`]) and errno stays as
    /// it was ([`Heap::PRESERVES_ERRNO`]), both required with it, and it
    /// does what [`Heap::free`] does. A Linux interposing shim's `free` (and
    /// C++'s unsized deletes) then jump straight to it once the shim serves
    /// calls, through a pointer set at load: one instruction between the
    /// export and the heap (mimalloc: `mi_free`). `None` (the default): the
    /// shim's own free around [`Heap::free`]. A wrapping heap leaves it `None`.
    const FREE_FN: Option<unsafe extern "C" fn(*mut u8)> = None;

    /// Releases a block returned by this heap.
    ///
    /// # Safety
    /// `ptr` is non-NULL (NULL too with [`Heap::FREES_NULL`]) and was
    /// returned by this heap and not freed since.
    unsafe fn free(&self, ptr: *mut u8);

    /// Allocates `size` (>= 1, or 0 with [`Heap::ALLOCATES_ZERO`]) bytes
    /// aligned to `align` (a power of two > 16), or NULL.
    fn memalign(&self, align: usize, size: usize) -> *mut u8;

    /// The usable size of a live block (at least what was asked for).
    ///
    /// # Safety
    /// `ptr` is non-NULL and was returned by this heap and not freed since.
    unsafe fn get_size(&self, ptr: *mut u8) -> usize;

    /// Locks the whole heap (taken around `fork()`).
    fn lock(&self);

    /// Unlocks the heap after `lock` (in the fork parent and child).
    fn unlock(&self);

    /// Resizes a live block to `size` (>= 1) bytes. On failure returns NULL and
    /// leaves `ptr` untouched. The default allocates, copies the smaller of the
    /// old usable size and `size`, and frees the old block.
    ///
    /// # Safety
    /// `ptr` is non-NULL and was returned by this heap and not freed since.
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        let new = self.malloc(size);
        if !new.is_null() {
            let old = self.get_size(ptr);
            core::ptr::copy_nonoverlapping(ptr, new, if old < size { old } else { size });
            self.free(ptr);
        }
        new
    }

    /// Allocates `size` (>= 1, or 0 with `ALLOCATES_ZERO`) zeroed bytes. The default is `malloc` + zeroing;
    /// a heap that knows its fresh memory is already zero can do better.
    fn calloc(&self, size: usize) -> *mut u8 {
        let p = self.malloc(size);
        if !p.is_null() {
            unsafe { core::ptr::write_bytes(p, 0, size) };
        }
        p
    }

    /// Frees a block whose requested size the caller knows (C++ sized delete).
    ///
    /// # Safety
    /// As for [`Heap::free`]; `size` is the size the block was allocated with.
    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        let _ = size;
        self.free(ptr)
    }

    /// Set to `true` when [`Heap::owns`] answers honestly. Linux never asks
    /// (one allocator per process from the first instruction). macOS: with it
    /// the shim registers its malloc zone, answers 0 from the zone's `size`
    /// for blocks that are not the heap's, and hands such blocks (allocated
    /// before the library was loaded, or inside libmalloc) back to the system;
    /// without it the shim never registers its zone and treats every pointer
    /// as the heap's. Windows requires it in interpose mode (a build without
    /// it is refused): the redirect DLL takes over C runtimes that have
    /// already handed out blocks, and sends every pointer the heap does not
    /// own back to the original function of that CRT (free, _msize, realloc
    /// by migration).
    const OWNS: bool = false;

    /// Whether `ptr` is a block of this heap: fast, no locks, never allocating.
    /// On macOS `ptr` may be any address (NULL, a block of another allocator,
    /// a wild pointer): answer from addresses alone, without reading through
    /// `ptr` unless it is known to be yours (libmalloc asks on every free of
    /// every registered zone). On Windows `ptr` is always a pointer the
    /// program handed to a CRT function (a live block of this heap or of a
    /// CRT's), so the bytes just before it may be read; a heap that does so
    /// sets `OWNS` on Windows only (`cfg!(windows)`).
    /// Consulted only when [`Heap::OWNS`] is `true`; the default claims all.
    fn owns(&self, ptr: *const u8) -> bool {
        let _ = ptr;
        true
    }

    /// Frees a block from an aligned allocation (`align` > 16) whose requested
    /// size the caller knows (C++ aligned sized delete, Rust deallocation).
    /// The default is [`Heap::free_sized`].
    ///
    /// # Safety
    /// As for [`Heap::free`]; the block came from `memalign(align, size)`.
    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        let _ = align;
        self.free_sized(ptr, size)
    }

    /// Set to `true` when the heap implements [`Heap::thread_init`] and
    /// [`Heap::thread_cleanup`]. Such a heap must be built with `--threads`
    /// (the shim then interposes `pthread_create` to run them), and
    /// `--threads` requires it: a heap without hooks pays for no interposition.
    const THREAD_HOOKS: bool = false;

    /// Runs in every thread the program creates once the shim is ready, before
    /// the thread's start routine. The main thread and threads created before
    /// the shim's constructor never get it: the heap must serve them too.
    fn thread_init(&self) {}

    /// Runs when a thread that got `thread_init` ends: on return, on
    /// `pthread_exit` and on cancellation. The thread may still call malloc
    /// and free afterwards (glibc frees its TLS, other key destructors run),
    /// so the heap must keep serving it after cleanup.
    fn thread_cleanup(&self) {}

    /// Runs once, in the thread that creates the program's first other
    /// thread, before that thread exists: the moment
    /// [`crate::threads::created`] turns true (`--threads` shims only).
    fn first_thread(&self) {}

    /// Set to `true` to have the shim count this heap's blocks (the
    /// report's calls, bytes, live bytes and peak), with [`Heap::get_size`]
    /// as each block's size, whenever a report will carry the counts; the
    /// heap then counts nothing itself, and its [`Heap::stats`] returns
    /// [`crate::observer::snapshot`]. Under `alloc8 run` the shim counts on
    /// its recording path, in the per-thread record that holds the crash
    /// trail (crate::observer): cheaper than any counting inside the heap,
    /// and a silent shim's calls are the heap's alone. `shims/system.rs` is
    /// the model. A heap that wraps such a heap sets it too.
    const COUNTED: bool = false;

    /// Statistics for the exit report, if the heap keeps any.
    fn stats(&self) -> Option<Stats> {
        None
    }
}

/// What a heap may report about itself at exit (and to `alloc8 run`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub mallocs: u64,
    pub frees: u64,
    pub reallocs: u64,
    /// Bytes handed out over the whole run (requested sizes).
    pub bytes_allocated: u64,
    /// Bytes live now.
    pub live_bytes: u64,
    /// The most bytes live at once.
    pub peak_live_bytes: u64,
}
