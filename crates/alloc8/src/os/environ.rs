//! The process environment, read and edited through `environ` itself.
//!
//! Not `getenv`/`unsetenv`: a preloaded library's calls bind to the first
//! definition in the process, and programs define their own (bash's `getenv`
//! reads its shell variables, and its `unsetenv` leaves `environ` as it was,
//! so children still inherited the preload). Removing an entry shifts the
//! pointers after it down, as glibc's `unsetenv` does: nothing is allocated.
//! Called from the shim's constructor only, before the program's `main`.

#[cfg(target_os = "linux")]
extern "C" {
    static mut environ: *mut *mut u8;
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
extern "C" {
    // A dylib cannot reach `environ` directly; libSystem hands out its address.
    fn _NSGetEnviron() -> *mut *mut *mut u8;
}

fn table() -> *mut *mut u8 {
    #[cfg(target_os = "linux")]
    return unsafe { environ };
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    return unsafe { *_NSGetEnviron() };
}

/// The `NAME=` prefix test: `entry` starts with `name` (its NUL dropped) and then `=`.
unsafe fn value_of(entry: *mut u8, name: &[u8]) -> Option<*mut u8> {
    let name = match name.split_last() {
        Some((&0, name)) => name,
        _ => name,
    };
    for (i, &b) in name.iter().enumerate() {
        if *entry.add(i) != b {
            return None;
        }
    }
    if *entry.add(name.len()) == b'=' {
        Some(entry.add(name.len() + 1))
    } else {
        None
    }
}

unsafe fn c_len(s: *const u8) -> usize {
    let mut n = 0;
    while *s.add(n) != 0 {
        n += 1;
    }
    n
}

/// Whether the process's environment exists yet (not while the first
/// libraries load, before the C library set it up).
pub fn ready() -> bool {
    !table().is_null()
}

/// The value of `name` (NUL-terminated, as C spells it; `alloc8 run` finds
/// the shim's `ALLOC8_REPORT\0` in the library), as the environment's own writable
/// bytes (without the NUL, which follows them), or None if unset.
pub fn get(name: &[u8]) -> Option<&'static mut [u8]> {
    let env = table();
    if env.is_null() {
        return None;
    }
    unsafe {
        let mut slot = env;
        while !(*slot).is_null() {
            if let Some(value) = value_of(*slot, name) {
                return Some(core::slice::from_raw_parts_mut(value, c_len(value)));
            }
            slot = slot.add(1);
        }
    }
    None
}

/// Removes every `name=` entry from the environment.
pub fn remove(name: &[u8]) {
    let env = table();
    if env.is_null() {
        return;
    }
    unsafe {
        let mut slot = env;
        while !(*slot).is_null() {
            if value_of(*slot, name).is_some() {
                let mut next = slot;
                loop {
                    *next = *next.add(1);
                    if (*next).is_null() {
                        break;
                    }
                    next = next.add(1);
                }
            } else {
                slot = slot.add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    // One test: the process environment is shared by every test thread.
    #[test]
    fn get_and_remove_work_on_the_live_environment() {
        std::env::set_var("ALLOC8_ENV_TEST_A", "first");
        std::env::set_var("ALLOC8_ENV_TEST_AB", "second");
        assert_eq!(get(b"ALLOC8_ENV_TEST_A\0").as_deref(), Some(&b"first"[..]));
        assert_eq!(get(b"ALLOC8_ENV_TEST_AB\0").as_deref(), Some(&b"second"[..]));
        assert!(get(b"ALLOC8_ENV_TEST\0").is_none(), "a prefix of a name is not the name");
        // The bytes are the environment's own: an edit is what getenv sees.
        get(b"ALLOC8_ENV_TEST_AB\0").unwrap()[0] = b'S';
        extern "C" {
            fn getenv(name: *const u8) -> *const std::os::raw::c_char;
        }
        let seen = unsafe { CStr::from_ptr(getenv(b"ALLOC8_ENV_TEST_AB\0".as_ptr())) };
        assert_eq!(seen.to_bytes(), b"Second");
        remove(b"ALLOC8_ENV_TEST_A\0");
        assert!(get(b"ALLOC8_ENV_TEST_A\0").is_none());
        assert!(unsafe { getenv(b"ALLOC8_ENV_TEST_A\0".as_ptr()) }.is_null(), "the C library sees it gone");
        assert_eq!(get(b"ALLOC8_ENV_TEST_AB\0").as_deref(), Some(&b"Second"[..]), "its neighbour stays");
        remove(b"ALLOC8_ENV_TEST_AB\0");
        assert!(std::env::var_os("ALLOC8_ENV_TEST_AB").is_none());
        remove(b"ALLOC8_ENV_TEST_NEVER_SET\0");
    }
}
