//! `alloc8 run --no-inherit`: programs started by the process must not inherit the preload.
//!
//! The launcher puts the shim first in `LD_PRELOAD` and sets `ALLOC8_NO_INHERIT=1`.
//! The shim's constructor in that first process then drops the first entry
//! from its own `LD_PRELOAD`, in place (environment strings are writable), and
//! unsets the alloc8 variables (glibc's `unsetenv` shifts pointers and never
//! allocates: the constructor runs inside the program, before its `main`).
//! Programs it then execs start without the shim and with the preload the
//! user had; copies it forks are the same image and necessarily keep it.

/// Strips our entry if the launcher asked for it; called once from the constructor,
/// after the report channel has copied what it needs from the environment.
pub fn apply() {
    #[cfg(unix)]
    unix::apply();
}

/// Removes the first entry of a preload list (entries separated by `:` or
/// spaces, as ld.so reads them) in place; returns the new length.
pub fn strip_first(list: &mut [u8]) -> usize {
    let is_sep = |b: u8| b == b':' || b == b' ';
    let mut start = 0;
    while start < list.len() && !is_sep(list[start]) {
        start += 1;
    }
    while start < list.len() && is_sep(list[start]) {
        start += 1;
    }
    let rest = list.len() - start;
    list.copy_within(start.., 0);
    rest
}

#[cfg(unix)]
mod unix {
    extern "C" {
        // Declared as in report.rs (one signature per symbol in the crate).
        fn getenv(name: *const u8) -> *const u8;
        fn unsetenv(name: *const u8) -> i32;
        fn strlen(s: *const u8) -> usize;
    }

    pub fn apply() {
        unsafe {
            let flag = getenv(b"ALLOC8_NO_INHERIT\0".as_ptr());
            if flag.is_null() || *flag != b'1' {
                return;
            }
            // The string is the environment's own, writable.
            let list = getenv(b"LD_PRELOAD\0".as_ptr()) as *mut u8;
            if !list.is_null() {
                let value = core::slice::from_raw_parts_mut(list, strlen(list));
                let len = super::strip_first(value);
                if len == 0 {
                    unsetenv(b"LD_PRELOAD\0".as_ptr());
                } else {
                    *list.add(len) = 0;
                }
            }
            unsetenv(b"ALLOC8_NO_INHERIT\0".as_ptr());
            unsetenv(b"ALLOC8_REPORT\0".as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_first;
    use std::string::String;

    fn strip(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        let n = strip_first(&mut v);
        String::from_utf8(v[..n].to_vec()).unwrap()
    }

    #[test]
    fn only_the_first_entry_goes() {
        assert_eq!(strip("/a/libshim.so"), "");
        assert_eq!(strip("/a/libshim.so:/b/libother.so"), "/b/libother.so");
        assert_eq!(strip("/a/libshim.so  /b/x.so:/c/y.so"), "/b/x.so:/c/y.so");
        assert_eq!(strip(""), "");
    }
}
