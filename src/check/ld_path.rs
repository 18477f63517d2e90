//! Where the dynamic linker (glibc's ld.so) finds a NEEDED library: the
//! requesting object's DT_RPATH (when it has no DT_RUNPATH), LD_LIBRARY_PATH,
//! its DT_RUNPATH, /etc/ld.so.cache, then the default directories. A
//! candidate of another ELF class or machine is skipped, as ld.so skips it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The lists of directories that apply to one lookup, in ld.so's order.
pub struct SearchPath<'a> {
    /// DT_RPATH of the requester and of the objects that loaded it (ignored
    /// by ld.so when the requester has a DT_RUNPATH: pass none then).
    pub rpath: &'a [String],
    pub runpath: &'a [String],
    /// The directory of the requesting object, for `$ORIGIN`.
    pub origin: &'a Path,
}

/// The file ld.so would load for `name`, given `fits` (class and machine match).
pub fn find(name: &str, search: &SearchPath, fits: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(expand(name, search.origin));
        return fits(&p).then_some(p);
    }
    let in_dirs = |dirs: &mut dyn Iterator<Item = String>| {
        dirs.map(|d| PathBuf::from(expand(&d, search.origin)).join(name)).find(|p| p.is_file() && fits(p))
    };
    let env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let env_dirs = env.split([':', ';']).filter(|d| !d.is_empty()).map(str::to_string);
    in_dirs(&mut search.rpath.iter().cloned())
        .or_else(|| in_dirs(&mut env_dirs.into_iter()))
        .or_else(|| in_dirs(&mut search.runpath.iter().cloned()))
        .or_else(|| cache().get(name).and_then(|paths| paths.iter().find(|p| fits(p)).cloned()))
        .or_else(|| in_dirs(&mut default_dirs().into_iter()))
}

/// `$ORIGIN`, `$LIB` and `$PLATFORM` (also as `${...}`) as ld.so expands them.
fn expand(dir: &str, origin: &Path) -> String {
    let lib = format!("lib/{}", multiarch());
    let mut out = dir.to_string();
    for (var, value) in [("ORIGIN", origin.to_string_lossy().into_owned()), ("LIB", lib), ("PLATFORM", std::env::consts::ARCH.to_string())]
    {
        out = out.replace(&format!("${{{}}}", var), &value).replace(&format!("${}", var), &value);
    }
    out
}

/// Debian's multiarch directory name (`x86_64-linux-gnu`).
fn multiarch() -> String {
    match std::env::consts::ARCH {
        "x86" => "i386-linux-gnu".to_string(),
        "arm" => "arm-linux-gnueabihf".to_string(),
        arch => format!("{}-linux-gnu", arch),
    }
}

/// The directories ld.so searches last (its built-in list on a multiarch system).
fn default_dirs() -> Vec<String> {
    let m = multiarch();
    vec![format!("/lib/{}", m), format!("/usr/lib/{}", m), "/lib64".into(), "/usr/lib64".into(), "/lib".into(), "/usr/lib".into()]
}

/// /etc/ld.so.cache: library name -> paths, read once.
fn cache() -> &'static HashMap<String, Vec<PathBuf>> {
    static CACHE: OnceLock<HashMap<String, Vec<PathBuf>>> = OnceLock::new();
    CACHE.get_or_init(|| std::fs::read("/etc/ld.so.cache").map(|d| parse_cache(&d)).unwrap_or_default())
}

/// The "glibc-ld.so.cache1.1" format (alone, or after the old one): a
/// 48-byte header, then 24-byte entries whose key and value are offsets of
/// NUL-terminated strings from the start of that header. Entries for
/// glibc-hwcaps subdirectories come after the plain ones of the same name.
pub fn parse_cache(data: &[u8]) -> HashMap<String, Vec<PathBuf>> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let Some(start) = data.windows(MAGIC.len()).position(|w| w == MAGIC) else { return out };
    let d = &data[start..];
    let u32_at = |o: usize| d.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let string = |o: u32| {
        let s = d.get(o as usize..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let Some(count) = u32_at(20) else { return out };
    let mut entries = Vec::new();
    for i in 0..count as usize {
        let at = 48 + i * 24;
        let (Some(key), Some(value)) = (u32_at(at + 4), u32_at(at + 8)) else { break };
        let hwcap = d.get(at + 16..at + 24).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
        if let (Some(k), Some(v)) = (string(key), string(value)) {
            entries.push((hwcap != 0, k, v));
        }
    }
    entries.sort_by_key(|e| e.0);
    for (_, k, v) in entries {
        out.entry(k).or_default().push(PathBuf::from(v));
    }
    out
}

#[cfg(test)]
mod tests {
    // Paths rather than `use super::*`: benches/check.rs compiles this
    // module without the test harness, where an import would be unused.

    #[test]
    fn origin_and_friends_expand() {
        let o = std::path::Path::new("/opt/x/lib");
        assert_eq!(super::expand("$ORIGIN/../deps", o), "/opt/x/lib/../deps");
        assert_eq!(super::expand("${ORIGIN}", o), "/opt/x/lib");
        assert!(super::expand("/usr/$LIB", o).starts_with("/usr/lib/"));
    }

    #[test]
    fn the_systems_cache_knows_libc() {
        // Every glibc system has one; it must list the C library.
        let cache = super::parse_cache(&std::fs::read("/etc/ld.so.cache").unwrap());
        let libc = cache.get("libc.so.6").expect("libc.so.6 in /etc/ld.so.cache");
        assert!(libc[0].is_file(), "{:?}", libc);
    }

    #[test]
    fn a_truncated_cache_is_no_cache() {
        assert!(super::parse_cache(b"glibc-ld.so.cache1.1\xff\xff\xff\xff").is_empty());
        assert!(super::parse_cache(b"").is_empty());
    }
}
