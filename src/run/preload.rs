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

/// What the dynamic linker splits its preload list at: glibc's ld.so takes
/// spaces and colons (macOS's dyld only colons).
const SPLITS_AT: &[u8] = if cfg!(target_os = "macos") { b":" } else { b" :" };

fn splits(path: &Path) -> bool {
    path.as_os_str().as_bytes().iter().any(|b| SPLITS_AT.contains(b))
}

/// A path to preload `lib` by that the dynamic linker cannot split: `lib`
/// itself, or (when it has a space or a colon: a home directory such as
/// "/home/Jane Doe") a symbolic link named by a hash of what it points at,
/// in a directory of the user's whose own path has neither. The link points
/// at the library's directory when only that has separators, so that an
/// `$ORIGIN` in the library's search path still finds its neighbours. Links
/// are kept and reused (the same library gets the same link); a path that no
/// link can carry is refused before any program starts.
pub fn unsplittable(lib: &Path) -> anyhow::Result<std::path::PathBuf> {
    if !splits(lib) {
        return Ok(lib.to_path_buf());
    }
    let name = lib.file_name().map(Path::new);
    let (target, tail) = match (lib.parent(), name) {
        (Some(dir), Some(name)) if !splits(name) && !dir.as_os_str().is_empty() => (dir, Some(name)),
        _ => (lib, None),
    };
    let key = crate::build::cache::hash(&[&target.to_string_lossy()]);
    let mut tried = Vec::new();
    for dir in link_dirs() {
        let link = dir.join(&key[..16]);
        match link_to(&link, target) {
            Ok(()) => return Ok(tail.map_or_else(|| link.clone(), |t| link.join(t))),
            Err(e) => tried.push(format!("{}: {}", dir.display(), e)),
        }
    }
    anyhow::bail!(
        "cannot preload {}: the dynamic linker splits {} at spaces and colons, and no link to it could be made in a \
         directory without them ({}); move the library, or set TMPDIR to such a directory",
        lib.display(),
        PRELOAD_VAR,
        if tried.is_empty() { "none found".to_string() } else { tried.join("; ") }
    )
}

/// Where links may go, best first: alloc8's cache, else a private directory
/// of this user's in the temporary directory (or /tmp). Only paths the
/// dynamic linker would not split.
fn link_dirs() -> Vec<std::path::PathBuf> {
    let uid = unsafe { libc::geteuid() };
    let private = format!("alloc8-{}", uid);
    let mut dirs = vec![crate::build::cache::dir().join("preload")];
    for tmp in [std::env::temp_dir(), std::path::PathBuf::from("/tmp")] {
        let dir = tmp.join(&private);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.into_iter().filter(|d| d.is_absolute() && !splits(d)).collect()
}

/// Makes `link` point at `target` (atomically: a link made aside, renamed
/// over), after making sure its directory is the user's alone when it is
/// shared ground (a temporary directory).
fn link_to(link: &Path, target: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let dir = link.parent().expect("a link in a directory");
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let meta = std::fs::symlink_metadata(dir)?;
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other("not a directory of this user's alone"));
    }
    let aside = dir.join(format!(".{}.{}", link.file_name().unwrap().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&aside);
    std::os::unix::fs::symlink(target, &aside)?;
    std::fs::rename(&aside, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&aside);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_spaces_or_colons_is_preloaded_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("libplain.so");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(unsplittable(&plain).unwrap(), plain, "a plain path is used as is");
        let odd_dir = dir.path().join("my libs:v2");
        std::fs::create_dir(&odd_dir).unwrap();
        for name in ["libh.so", "lib h:1.so"] {
            let lib = odd_dir.join(name);
            std::fs::write(&lib, name).unwrap();
            let via = unsplittable(&lib).unwrap();
            assert!(!splits(&via), "{}", via.display());
            assert_eq!(std::fs::read_to_string(&via).unwrap(), name, "the link leads to the library");
            assert_eq!(unsplittable(&lib).unwrap(), via, "the same library reuses its link");
        }
    }

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
