//! The environment a program is launched with: our library first in the
//! preload list, whatever the user preloaded kept after it, and the variables
//! the shim reads (where to report, whether to stop inheritance).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The dynamic linker's preload variable.
#[cfg(target_os = "macos")]
pub const PRELOAD_VAR: &str = "DYLD_INSERT_LIBRARIES";
#[cfg(not(target_os = "macos"))]
pub const PRELOAD_VAR: &str = "LD_PRELOAD";

/// Where the shim appends its JSON lines (see crates/alloc8/src/report.rs).
pub const REPORT_VAR: &str = "ALLOC8_REPORT";
/// Tells the shim in the launched process to drop itself from the preload
/// list its children inherit (see crates/alloc8/src/inherit.rs).
pub const NO_INHERIT_VAR: &str = "ALLOC8_NO_INHERIT";

/// `ours` first (the shim strips exactly the first entry under --no-inherit),
/// then the existing entries, minus any copy of ours.
pub fn compose(ours: &Path, existing: Option<&OsStr>) -> OsString {
    let sep: &[u8] = if cfg!(target_os = "macos") { b":" } else { b": " };
    let mut out = ours.as_os_str().as_bytes().to_vec();
    if let Some(existing) = existing {
        for entry in existing.as_bytes().split(|b| sep.contains(b)).filter(|e| !e.is_empty()) {
            if entry != ours.as_os_str().as_bytes() {
                out.push(b':');
                out.extend_from_slice(entry);
            }
        }
    }
    OsString::from_vec(out)
}

/// The variables to set in the program's environment (everything else is inherited as is).
pub fn variables(ours: &Path, report: &Path, no_inherit: bool) -> Vec<(&'static str, OsString)> {
    let existing = std::env::var_os(PRELOAD_VAR);
    let mut vars = vec![(PRELOAD_VAR, compose(ours, existing.as_deref())), (REPORT_VAR, report.as_os_str().to_owned())];
    if no_inherit {
        vars.push((NO_INHERIT_VAR, OsString::from("1")));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_comes_first_and_existing_entries_are_kept() {
        let ours = Path::new("/c/libsystem.so");
        assert_eq!(compose(ours, None), "/c/libsystem.so");
        assert_eq!(compose(ours, Some(OsStr::new(""))), "/c/libsystem.so");
        assert_eq!(compose(ours, Some(OsStr::new("/x/a.so"))), "/c/libsystem.so:/x/a.so");
        assert_eq!(compose(ours, Some(OsStr::new("/x/a.so /y/b.so::"))), "/c/libsystem.so:/x/a.so:/y/b.so");
        assert_eq!(compose(ours, Some(OsStr::new("/x/a.so:/c/libsystem.so"))), "/c/libsystem.so:/x/a.so");
    }
}
