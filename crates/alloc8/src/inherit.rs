//! `alloc8 run --no-inherit`: programs started by the process must not inherit the preload.
//!
//! The launcher puts the shim first in `LD_PRELOAD` and sets `ALLOC8_NO_INHERIT=1`.
//! The shim's constructor in that first process then drops the first entry
//! from its own `LD_PRELOAD`, in place (environment strings are writable), and
//! removes the alloc8 variables, all through `environ` itself (see
//! `environ`: a program's own `getenv`/`unsetenv`, such as bash's, never
//! sees the call; the constructor runs inside the program, before its `main`).
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
    use crate::os::environ;

    pub fn apply() {
        match environ::get(b"ALLOC8_NO_INHERIT\0") {
            Some(flag) if flag.first() == Some(&b'1') => {}
            _ => return,
        }
        if let Some(list) = environ::get(b"LD_PRELOAD\0") {
            let len = super::strip_first(list);
            if len == 0 {
                environ::remove(b"LD_PRELOAD\0");
            } else {
                // The value is the environment's own string: shorten it in place.
                list[len] = 0;
            }
        }
        environ::remove(b"ALLOC8_NO_INHERIT\0");
        environ::remove(b"ALLOC8_REPORT\0");
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
