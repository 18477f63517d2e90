//! Where generated crates and their cargo target dir live between builds.
//!
//! `$ALLOC8_CACHE_DIR`, else `$XDG_CACHE_HOME/alloc8`, else `~/.cache/alloc8`.
//! Files are rewritten only when their content changes, so cargo's own
//! freshness check makes a no-change rebuild fast.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ALLOC8_CACHE_DIR").filter(|d| !d.is_empty()) {
        // Generated manifests name paths inside the cache: they must be absolute.
        return std::path::absolute(&d).unwrap_or_else(|_| PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("alloc8");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("alloc8");
    }
    std::env::temp_dir().join("alloc8-cache")
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
