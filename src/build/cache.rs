//! Where generated crates and their cargo target dir live between builds.
//!
//! `$ALLOC8_CACHE_DIR`, else `$XDG_CACHE_HOME/alloc8`, else `~/.cache/alloc8`.
//! Files are rewritten only when their content changes, so cargo's own
//! freshness check makes a no-change rebuild fast.

use anyhow::{bail, Context, Result};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn dir() -> PathBuf {
    located().0
}

/// The cache directory and the setting it comes from.
fn located() -> (PathBuf, &'static str) {
    if let Some(d) = std::env::var_os("ALLOC8_CACHE_DIR").filter(|d| !d.is_empty()) {
        // Generated manifests name paths inside the cache: they must be absolute.
        return (std::path::absolute(&d).unwrap_or_else(|_| PathBuf::from(d)), "ALLOC8_CACHE_DIR");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return (PathBuf::from(d).join("alloc8"), "XDG_CACHE_HOME");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return (PathBuf::from(home).join(".cache").join("alloc8"), "HOME");
    }
    (std::env::temp_dir().join("alloc8-cache"), "TMPDIR")
}

/// [`dir`], once it is known to be a directory or creatable as one: the
/// error names the variable it came from, which the user can change.
pub fn usable_dir() -> Result<PathBuf> {
    let (dir, from) = located();
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => return Ok(dir),
            Ok(_) => bail!(
                "the build cache {} (from {}) cannot be a directory: {} is a file; {}",
                dir.display(),
                from,
                ancestor.display(),
                match from {
                    "ALLOC8_CACHE_DIR" => "point ALLOC8_CACHE_DIR at a directory, or unset it",
                    "XDG_CACHE_HOME" => "point XDG_CACHE_HOME at a directory, or set ALLOC8_CACHE_DIR to one",
                    _ => "set ALLOC8_CACHE_DIR to a directory",
                }
            ),
            Err(_) => continue,
        }
    }
    Ok(dir)
}

/// Writes `contents` to `path` unless it already holds exactly that.
/// The write goes through a temporary file and a rename, so a concurrent
/// reader (another alloc8 building the same heap) never sees half a file.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<()> {
    if std::fs::read(path).map(|old| old == contents.as_bytes()).unwrap_or(false) {
        return Ok(());
    }
    let parent = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{}.{}.tmp", path.file_name().unwrap().to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A short stable hash (FNV-1a) for naming cache entries.
pub fn hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(std::iter::once(&0u8)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{:016x}", h)
}

/// A digest of bytes: 128 bits from two differently seeded SipHashes (std's
/// hasher with fixed keys; a new alloc8 may hash differently, which only
/// costs one rebuild). What the caches compare content by.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut d = Digest::new();
    for p in parts {
        d.update(p);
    }
    d.finish()
}

/// [`digest`] fed part by part (the same result for the same parts).
pub struct Digest([DefaultHasher; 2]);

impl Digest {
    pub fn new() -> Digest {
        let mut hashers = [DefaultHasher::new(), DefaultHasher::new()];
        for (h, seed) in hashers.iter_mut().zip([0x9e37_79b9_u64, 0x85eb_ca6b]) {
            seed.hash(h);
        }
        Digest(hashers)
    }

    pub fn update(&mut self, part: &[u8]) {
        for h in &mut self.0 {
            part.len().hash(h);
            h.write(part);
        }
    }

    pub fn finish(&self) -> String {
        self.0.iter().map(|h| format!("{:016x}", h.finish())).collect()
    }
}

/// A file's size, modification and change times and inode number: equal
/// only if nothing rewrote, replaced or restored the file since. The change
/// time (ctime) is set by the kernel on every write, rename or time change,
/// and no copy or archive tool (`cp -p`, `touch -d`, `tar x`, `rsync -a`) can
/// set it back. Times are coarse (a clock tick): see xx_cache for files that
/// may change twice within one.
pub fn file_stamp(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}.{}{:09}.{}{:09}.{}", m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino())
}

/// The digest of a file's bytes; None if it cannot be read.
pub fn file_digest(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
    Some(digest(&[&bytes]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_fed_in_parts_is_the_digest_of_the_parts() {
        let mut d = Digest::new();
        d.update(b"ab");
        d.update(b"c");
        assert_eq!(d.finish(), digest(&[b"ab", b"c"]));
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
