//! Words per thread, read at register speed: the heap's (what
//! [`crate::threads::Local`] gives a heap, for its per-thread cache) and
//! alloc8's own ([`Own`]: the observer's slot and ring, the sampler's
//! countdown).
//!
//! Stable Rust's `thread_local!` in a shared library reaches its storage
//! through `__tls_get_addr` (general-dynamic TLS): a call per access, and one
//! that may call malloc itself (ld.so grows its TLS tables with malloc after a
//! `dlopen`). `#[thread_local]` and `-Z tls-model` are nightly-only. So the
//! word is defined and read in assembly, per platform:
//!
//! - Linux x86-64: a `.tbss` symbol read with the initial-exec model: its
//!   offset from the thread pointer is loaded once from the GOT (a constant,
//!   filled in when the library is loaded), then one `%fs`-relative load. Two
//!   instructions, no call, no relocation processing at run time. The word is
//!   part of the static TLS block glibc sizes when the program starts, which
//!   includes every library loaded with it (LD_PRELOAD, DT_NEEDED): zero in
//!   every thread, including the main thread before any constructor runs and
//!   threads the shim never saw start. A library `dlopen`ed later gets its
//!   static TLS from a small reserve (glibc's surplus, about 1.6 KiB shared by
//!   every such library); when that is gone, `dlopen` fails with "cannot
//!   allocate memory in static TLS block". An interposer is preloaded, so it
//!   always fits; a prefixed library that a program may `dlopen` late takes
//!   32 of those bytes (this word and alloc8's own three, `Own`).
//! - macOS (x86-64, arm64): a pthread key, created on the first `set`, read
//!   straight from the thread's TSD slots (`%gs` / `tpidrro_el0`): what
//!   `pthread_getspecific` does, inline. A load and a test until a key
//!   exists (no thread can have set the word before).
//! - Windows x86-64: a TLS index (`TlsAlloc`, on the first `set`), read from
//!   the TEB's TLS slots (`%gs:0x1480`, or the expansion slots for indexes
//!   from 64): what `TlsGetValue` does, inline.
//! - Elsewhere: `pthread_getspecific`/`TlsGetValue` through the same key.
//!
//! Every thread sees its own word; there is one per process (alloc8's, for
//! the heap): point it at a structure if the heap needs more.

/// alloc8's own words per thread, beside the heap's: where the observer
/// (`stats::Counters`, `trail`) keeps this thread's slot and ring, so that
/// counting and recording a call find them in two instructions. Linux
/// x86-64 only; elsewhere `get` is 0 and `set` keeps nothing, and the
/// observer finds its slot by the thread pointer on every call instead.
#[derive(Clone, Copy)]
pub(crate) enum Own {
    /// The address of this thread's `stats::Counters` slot.
    Counters,
    /// The address of the next entry of this thread's `trail` ring.
    Trail,
    /// `--guard-sample`: allocations left before this thread's next guarded one.
    /// (Unused where the checking layer is not built: Windows, macOS.)
    #[allow(dead_code)]
    Countdown,
}

/// Whether threads have `Own` words here (Linux x86-64); elsewhere `get` is 0.
pub(crate) const OWN_WORDS: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

impl Own {
    #[inline(always)]
    pub(crate) fn get(self) -> usize {
        own::get(self)
    }

    #[inline(always)]
    pub(crate) fn set(self, value: usize) {
        own::set(self, value)
    }

    /// Takes one from the word and says whether it was above 1 (a
    /// countdown still running). The word is decremented whatever it was:
    /// 1 becomes 0, and 0 (never started) wraps to `usize::MAX`. (Used by
    /// the checking layer's sampler, which is built for Linux only.)
    #[cfg_attr(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn count_down(self) -> bool {
        own::count_down(self)
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod own {
    #[inline(always)]
    pub(crate) fn get(_word: super::Own) -> usize {
        0
    }

    #[inline(always)]
    pub(crate) fn set(_word: super::Own, _value: usize) {}

    #[inline(always)]
    pub(crate) fn count_down(_word: super::Own) -> bool {
        false
    }
}

/// This thread's heap word (0 until set).
#[inline(always)]
pub(crate) fn get() -> usize {
    imp::get()
}

/// Sets this thread's heap word; `false` if the platform had no key to give
/// (never on Linux x86-64, where this is a store). Elsewhere the first call
/// in the process creates the key, which never allocates (on glibc a key
/// past the 32 that live in the thread descriptor would, through our own
/// malloc: such a key is refused).
#[inline(always)]
pub(crate) fn set(value: usize) -> bool {
    imp::set(value)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use core::arch::{asm, global_asm};

    // Hidden, so the GOT entry is this library's own (one TPOFF relocation
    // at load) and no other module can take the name over.
    global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __alloc8_local_word",
        ".hidden __alloc8_local_word",
        ".type __alloc8_local_word,@object",
        ".size __alloc8_local_word,8",
        "__alloc8_local_word:",
        ".zero 8",
        ".globl __alloc8_counters_word",
        ".hidden __alloc8_counters_word",
        ".type __alloc8_counters_word,@object",
        ".size __alloc8_counters_word,8",
        "__alloc8_counters_word:",
        ".zero 8",
        ".globl __alloc8_trail_word",
        ".hidden __alloc8_trail_word",
        ".type __alloc8_trail_word,@object",
        ".size __alloc8_trail_word,8",
        "__alloc8_trail_word:",
        ".zero 8",
        ".globl __alloc8_countdown_word",
        ".hidden __alloc8_countdown_word",
        ".type __alloc8_countdown_word,@object",
        ".size __alloc8_countdown_word,8",
        "__alloc8_countdown_word:",
        ".zero 8",
        ".popsection",
    );

    /// The word's offset from the thread pointer: the same in every thread.
    #[inline(always)]
    pub(super) fn offset() -> usize {
        let offset: usize;
        // The GOT entry is written before any code of the library runs and
        // never again (RELRO): as good as a constant.
        unsafe {
            asm!(
                "mov {}, qword ptr [rip + __alloc8_local_word@GOTTPOFF]",
                out(reg) offset,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        offset
    }

    /// The offset of one of alloc8's own words (see `offset`).
    #[inline(always)]
    pub(crate) fn own_offset(word: super::Own) -> usize {
        let offset: usize;
        unsafe {
            match word {
                super::Own::Counters => asm!(
                    "mov {}, qword ptr [rip + __alloc8_counters_word@GOTTPOFF]",
                    out(reg) offset,
                    options(pure, nomem, nostack, preserves_flags)
                ),
                super::Own::Trail => asm!(
                    "mov {}, qword ptr [rip + __alloc8_trail_word@GOTTPOFF]",
                    out(reg) offset,
                    options(pure, nomem, nostack, preserves_flags)
                ),
                super::Own::Countdown => asm!(
                    "mov {}, qword ptr [rip + __alloc8_countdown_word@GOTTPOFF]",
                    out(reg) offset,
                    options(pure, nomem, nostack, preserves_flags)
                ),
            }
        };
        offset
    }

    #[inline(always)]
    pub(super) fn get_at(offset: usize) -> usize {
        let value: usize;
        unsafe {
            asm!(
                "mov {}, qword ptr fs:[{}]",
                out(reg) value,
                in(reg) offset,
                options(pure, readonly, nostack, preserves_flags)
            )
        };
        value
    }

    #[inline(always)]
    pub(super) fn set_at(offset: usize, value: usize) {
        unsafe { asm!("mov qword ptr fs:[{}], {}", in(reg) offset, in(reg) value, options(nostack, preserves_flags)) };
    }

    #[inline(always)]
    pub fn get() -> usize {
        get_at(offset())
    }

    #[inline(always)]
    pub fn set(value: usize) -> bool {
        set_at(offset(), value);
        true
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod own {
    use super::imp::{get_at, own_offset, set_at};

    #[inline(always)]
    pub(crate) fn get(word: super::Own) -> usize {
        get_at(own_offset(word))
    }

    #[inline(always)]
    pub(crate) fn set(word: super::Own, value: usize) {
        set_at(own_offset(word), value)
    }

    /// One `sub` on the word at the thread pointer and a `seta`: the
    /// subtraction's flags decide, so there is no separate load, compare and
    /// store.
    #[inline(always)]
    pub(crate) fn count_down(word: super::Own) -> bool {
        let above: u8;
        unsafe {
            core::arch::asm!(
                "sub qword ptr fs:[{offset}], 1",
                "seta {above}",
                offset = in(reg) own_offset(word),
                above = out(reg_byte) above,
                options(nostack)
            )
        };
        above != 0
    }
}

/// A key (pthread key or Windows TLS index) made on first use; 0: none yet,
/// else the key plus one.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod key {
    use core::sync::atomic::{AtomicUsize, Ordering};

    pub static KEY: AtomicUsize = AtomicUsize::new(0);

    /// The key, if one exists yet. Relaxed: only the number is shared; what
    /// a thread stored under it is its own.
    #[inline(always)]
    pub fn existing() -> Option<usize> {
        match KEY.load(Ordering::Relaxed) {
            0 => None,
            k => Some(k - 1),
        }
    }

    /// The key, creating it with `create` (and dropping a racing loser's
    /// with `delete`); None if none can be had.
    #[cold]
    pub fn make(create: impl FnOnce() -> Option<usize>, delete: impl FnOnce(usize)) -> Option<usize> {
        if let Some(k) = existing() {
            return Some(k);
        }
        let mine = create()?;
        match KEY.compare_exchange(0, mine + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(mine),
            Err(theirs) => {
                delete(mine);
                Some(theirs - 1)
            }
        }
    }
}

#[cfg(all(unix, not(all(target_os = "linux", target_arch = "x86_64"))))]
mod imp {
    use super::key;
    use core::ffi::c_void;

    /// `pthread_key_t`: unsigned int on Linux, unsigned long on Darwin.
    #[cfg(target_vendor = "apple")]
    type PthreadKey = usize;
    #[cfg(not(target_vendor = "apple"))]
    type PthreadKey = u32;

    extern "C" {
        fn pthread_key_create(key: *mut PthreadKey, destructor: Option<unsafe extern "C" fn(*mut c_void)>) -> i32;
        fn pthread_key_delete(key: PthreadKey) -> i32;
        fn pthread_setspecific(key: PthreadKey, value: *const c_void) -> i32;
        #[cfg(not(all(target_vendor = "apple", any(target_arch = "x86_64", target_arch = "aarch64"))))]
        fn pthread_getspecific(key: PthreadKey) -> *mut c_void;
    }

    /// Darwin's pthread keys are indexes into the thread's TSD array.
    #[cfg(all(target_vendor = "apple", target_arch = "x86_64"))]
    #[inline(always)]
    fn read(key: usize) -> usize {
        let value: usize;
        unsafe {
            core::arch::asm!("mov {}, qword ptr gs:[{} * 8]", out(reg) value, in(reg) key, options(pure, readonly, nostack, preserves_flags))
        };
        value
    }

    #[cfg(all(target_vendor = "apple", target_arch = "aarch64"))]
    #[inline(always)]
    fn read(key: usize) -> usize {
        let tsd: usize;
        // The low bits of tpidrro_el0 may carry the CPU number.
        unsafe { core::arch::asm!("mrs {}, tpidrro_el0", out(reg) tsd, options(pure, nomem, nostack, preserves_flags)) };
        unsafe { *((tsd & !7) as *const usize).add(key) }
    }

    #[cfg(not(all(target_vendor = "apple", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    #[inline(always)]
    fn read(key: usize) -> usize {
        unsafe { pthread_getspecific(key as PthreadKey) as usize }
    }

    #[inline(always)]
    pub fn get() -> usize {
        match key::existing() {
            Some(k) => read(k),
            None => 0,
        }
    }

    /// glibc keeps the values of keys below 32 in the thread descriptor;
    /// setting a higher one calls calloc.
    #[cfg(target_os = "linux")]
    const KEY_LIMIT: usize = 32;
    #[cfg(not(target_os = "linux"))]
    const KEY_LIMIT: usize = usize::MAX;

    #[inline(always)]
    pub fn set(value: usize) -> bool {
        let made = key::make(
            || {
                let mut k: PthreadKey = 0;
                if unsafe { pthread_key_create(&mut k, None) } != 0 {
                    return None;
                }
                if k as usize >= KEY_LIMIT {
                    unsafe { pthread_key_delete(k) };
                    return None;
                }
                Some(k as usize)
            },
            |k| unsafe {
                pthread_key_delete(k as PthreadKey);
            },
        );
        match made {
            Some(k) => unsafe { pthread_setspecific(k as PthreadKey, value as *const c_void) == 0 },
            None => false,
        }
    }
}

#[cfg(windows)]
mod imp {
    use super::key;
    use core::ffi::c_void;

    const TLS_OUT_OF_INDEXES: u32 = 0xFFFF_FFFF;

    #[link(name = "kernel32")]
    extern "system" {
        fn TlsAlloc() -> u32;
        fn TlsFree(index: u32) -> i32;
        fn TlsSetValue(index: u32, value: *mut c_void) -> i32;
        #[cfg(not(target_arch = "x86_64"))]
        fn TlsGetValue(index: u32) -> *mut c_void;
    }

    /// The TEB's 64 TLS slots, then a pointer to the 1024 expansion slots
    /// (NULL until the thread has one set).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn read(index: usize) -> usize {
        let value: usize;
        unsafe {
            if index < 64 {
                core::arch::asm!("mov {}, qword ptr gs:[0x1480 + {} * 8]", out(reg) value, in(reg) index, options(pure, readonly, nostack, preserves_flags));
            } else {
                let expansion: usize;
                core::arch::asm!("mov {}, qword ptr gs:[0x1780]", out(reg) expansion, options(pure, readonly, nostack, preserves_flags));
                value = if expansion == 0 { 0 } else { *(expansion as *const usize).add(index - 64) };
            }
        }
        value
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn read(index: usize) -> usize {
        unsafe { TlsGetValue(index as u32) as usize }
    }

    #[inline(always)]
    pub fn get() -> usize {
        match key::existing() {
            Some(k) => read(k),
            None => 0,
        }
    }

    #[inline(always)]
    pub fn set(value: usize) -> bool {
        let made = key::make(
            || {
                let index = unsafe { TlsAlloc() };
                (index != TLS_OUT_OF_INDEXES).then(|| index as usize)
            },
            |index| unsafe {
                TlsFree(index as u32);
            },
        );
        match made {
            Some(index) => unsafe { TlsSetValue(index as u32, value as *mut c_void) != 0 },
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::threads::Local;
    use std::sync::Barrier;

    #[test]
    fn every_thread_has_its_own_word_and_it_starts_at_zero() {
        let threads = 8;
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let barrier = &barrier;
                s.spawn(move || {
                    assert_eq!(Local::get(), 0, "a new thread's word is zero");
                    assert!(Local::set(0x1000 + t));
                    // Everyone has set theirs before anyone reads.
                    barrier.wait();
                    for _ in 0..1000 {
                        assert_eq!(Local::get(), 0x1000 + t);
                    }
                    assert!(Local::set(usize::MAX - t));
                    assert_eq!(Local::get(), usize::MAX - t);
                });
            }
        });
        // Threads started after the others set theirs still start at zero.
        std::thread::spawn(|| assert_eq!(Local::get(), 0)).join().unwrap();
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn alloc8s_own_words_are_per_thread_and_apart_from_the_heaps() {
        use super::Own;
        std::thread::spawn(|| {
            assert_eq!((Own::Counters.get(), Own::Trail.get(), Local::get()), (0, 0, 0));
            Own::Counters.set(1);
            Own::Trail.set(2);
            assert!(Local::set(3));
            assert_eq!((Own::Counters.get(), Own::Trail.get(), Local::get()), (1, 2, 3));
            std::thread::spawn(|| assert_eq!((Own::Counters.get(), Own::Trail.get()), (0, 0))).join().unwrap();
        })
        .join()
        .unwrap();
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn the_word_lies_in_the_static_tls_block_below_the_thread_pointer() {
        // Initial-exec on x86-64: the word is at the thread pointer (%fs:0
        // holds it) plus a constant negative offset into the static block.
        let tp: usize;
        unsafe { core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp) };
        let offset = super::imp::offset() as isize;
        assert!(offset < 0 && offset > -(1 << 20), "offset {:#x}", offset);
        let word = tp.wrapping_add(offset as usize) as *mut usize;
        unsafe { word.write(0xabc) };
        assert_eq!(Local::get(), 0xabc);
        assert!(Local::set(0));
        assert_eq!(unsafe { word.read() }, 0);
    }
}
