//! The files alloc8 writes into every generated shim, embedded in the binary
//! so an installed `alloc8` works from any directory.

/// The alloc8 crate (heap trait and contract logic) the shim depends on.
pub const ALLOC8_CRATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../crates/alloc8/Cargo.toml")),
    ("src/lib.rs", include_str!("../../crates/alloc8/src/lib.rs")),
    ("src/checked/mod.rs", include_str!("../../crates/alloc8/src/checked/mod.rs")),
    ("src/checked/backtrace.rs", include_str!("../../crates/alloc8/src/checked/backtrace.rs")),
    ("src/checked/fault.rs", include_str!("../../crates/alloc8/src/checked/fault.rs")),
    ("src/checked/finding.rs", include_str!("../../crates/alloc8/src/checked/finding.rs")),
    ("src/checked/guard.rs", include_str!("../../crates/alloc8/src/checked/guard.rs")),
    ("src/checked/index.rs", include_str!("../../crates/alloc8/src/checked/index.rs")),
    ("src/checked/layout.rs", include_str!("../../crates/alloc8/src/checked/layout.rs")),
    ("src/checked/quarantine.rs", include_str!("../../crates/alloc8/src/checked/quarantine.rs")),
    ("src/checked/sampled.rs", include_str!("../../crates/alloc8/src/checked/sampled.rs")),
    ("src/checked/site.rs", include_str!("../../crates/alloc8/src/checked/site.rs")),
    ("src/checked/symbols.rs", include_str!("../../crates/alloc8/src/checked/symbols.rs")),
    ("src/crash.rs", include_str!("../../crates/alloc8/src/crash.rs")),
    ("src/heap.rs", include_str!("../../crates/alloc8/src/heap.rs")),
    ("src/inherit.rs", include_str!("../../crates/alloc8/src/inherit.rs")),
    ("src/macos/mod.rs", include_str!("../../crates/alloc8/src/macos/mod.rs")),
    ("src/macos/fork.rs", include_str!("../../crates/alloc8/src/macos/fork.rs")),
    ("src/macos/layout.rs", include_str!("../../crates/alloc8/src/macos/layout.rs")),
    ("src/macos/replace.rs", include_str!("../../crates/alloc8/src/macos/replace.rs")),
    ("src/macos/threads.rs", include_str!("../../crates/alloc8/src/macos/threads.rs")),
    ("src/macos/zone.rs", include_str!("../../crates/alloc8/src/macos/zone.rs")),
    ("src/global.rs", include_str!("../../crates/alloc8/src/global.rs")),
    ("src/os/mod.rs", include_str!("../../crates/alloc8/src/os/mod.rs")),
    ("src/os/environ.rs", include_str!("../../crates/alloc8/src/os/environ.rs")),
    ("src/os/libc.rs", include_str!("../../crates/alloc8/src/os/libc.rs")),
    ("src/os/maps.rs", include_str!("../../crates/alloc8/src/os/maps.rs")),
    ("src/os/syscall.rs", include_str!("../../crates/alloc8/src/os/syscall.rs")),
    ("src/os/tls.rs", include_str!("../../crates/alloc8/src/os/tls.rs")),
    ("src/os/ucontext.rs", include_str!("../../crates/alloc8/src/os/ucontext.rs")),
    ("src/os/win.rs", include_str!("../../crates/alloc8/src/os/win.rs")),
    ("src/os/x86.rs", include_str!("../../crates/alloc8/src/os/x86.rs")),
    ("src/overaligned.rs", include_str!("../../crates/alloc8/src/overaligned.rs")),
    ("src/overaligned/table.rs", include_str!("../../crates/alloc8/src/overaligned/table.rs")),
    ("src/panic.rs", include_str!("../../crates/alloc8/src/panic.rs")),
    ("src/report.rs", include_str!("../../crates/alloc8/src/report.rs")),
    ("src/record/mod.rs", include_str!("../../crates/alloc8/src/record/mod.rs")),
    ("src/record/encode.rs", include_str!("../../crates/alloc8/src/record/encode.rs")),
    ("src/record/format.rs", include_str!("../../crates/alloc8/src/record/format.rs")),
    ("src/record/clock.rs", include_str!("../../crates/alloc8/src/record/clock.rs")),
    ("src/record/maps.rs", include_str!("../../crates/alloc8/src/record/maps.rs")),
    ("src/record/recorder.rs", include_str!("../../crates/alloc8/src/record/recorder.rs")),
    ("src/record/thread.rs", include_str!("../../crates/alloc8/src/record/thread.rs")),
    ("src/shim.rs", include_str!("../../crates/alloc8/src/shim.rs")),
    ("src/stats.rs", include_str!("../../crates/alloc8/src/stats.rs")),
    ("src/sync.rs", include_str!("../../crates/alloc8/src/sync.rs")),
    ("src/tagged.rs", include_str!("../../crates/alloc8/src/tagged.rs")),
    ("src/text.rs", include_str!("../../crates/alloc8/src/text.rs")),
    ("src/threads.rs", include_str!("../../crates/alloc8/src/threads.rs")),
    ("src/trail.rs", include_str!("../../crates/alloc8/src/trail.rs")),
    ("src/observer.rs", include_str!("../../crates/alloc8/src/observer.rs")),
    ("src/testing/mod.rs", include_str!("../../crates/alloc8/src/testing/mod.rs")),
    ("src/testing/exec.rs", include_str!("../../crates/alloc8/src/testing/exec.rs")),
    ("src/testing/fork.rs", include_str!("../../crates/alloc8/src/testing/fork.rs")),
    ("src/testing/generate.rs", include_str!("../../crates/alloc8/src/testing/generate.rs")),
    ("src/testing/hooks.rs", include_str!("../../crates/alloc8/src/testing/hooks.rs")),
    ("src/testing/ops.rs", include_str!("../../crates/alloc8/src/testing/ops.rs")),
    ("src/testing/pattern.rs", include_str!("../../crates/alloc8/src/testing/pattern.rs")),
    ("src/testing/rng.rs", include_str!("../../crates/alloc8/src/testing/rng.rs")),
    ("src/testing/rules.rs", include_str!("../../crates/alloc8/src/testing/rules.rs")),
    ("src/testing/shadow.rs", include_str!("../../crates/alloc8/src/testing/shadow.rs")),
    ("src/testing/shrink.rs", include_str!("../../crates/alloc8/src/testing/shrink.rs")),
    ("src/testing/threads.rs", include_str!("../../crates/alloc8/src/testing/threads.rs")),
];

/// The alloc8 crate's version: the cache keeps one copy per version.
pub const ALLOC8_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A digest of the embedded alloc8 crate: copies of it are kept per content,
/// so two alloc8 builds of one version (an upgrade, a checkout beside an
/// installed binary) never write over each other's copy.
pub fn alloc8_crate_key() -> String {
    let parts: Vec<&str> = ALLOC8_CRATE.iter().flat_map(|(rel, text)| [*rel, *text]).collect();
    super::cache::hash(&parts)
}

/// Writes the alloc8 crate into the cache (unchanged files are left alone)
/// and returns its directory: what generated crates depend on.
pub fn write_alloc8_crate(cache: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = cache.join(format!("alloc8-{}-{}", ALLOC8_VERSION, &alloc8_crate_key()[..12]));
    write_alloc8_crate_into(&dir)?;
    Ok(dir)
}

/// Writes the alloc8 crate at `dir`, leaving unchanged files alone and
/// removing any source file it does not embed.
pub fn write_alloc8_crate_into(dir: &std::path::Path) -> anyhow::Result<()> {
    for (rel, text) in ALLOC8_CRATE {
        super::cache::write_if_changed(&dir.join(rel), text)?;
    }
    remove_stale_sources(&dir.join("src"), dir)
}

/// Removes every file under `src` that this alloc8 does not embed: a file
/// left in a copy (a module since moved: `src/os.rs` beside a new
/// `src/os/mod.rs` is an error to rustc) must not become part of the crate.
fn remove_stale_sources(src: &std::path::Path, crate_dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let Ok(entries) = std::fs::read_dir(src) else { return Ok(()) };
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read {}", src.display()))?.path();
        if path.is_dir() {
            remove_stale_sources(&path, crate_dir)?;
            continue;
        }
        let rel = path.strip_prefix(crate_dir).ok().and_then(|r| r.to_str()).unwrap_or("");
        if !ALLOC8_CRATE.iter().any(|(name, _)| *name == rel) {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
    }
    Ok(())
}

/// The shim crate's templates; `@NAME@` markers are filled in by `render`.
pub const SHIM_CARGO_TOML: &str = include_str!("../../templates/shim/Cargo.toml");
pub const SHIM_BUILD_RS: &str = include_str!("../../templates/shim/build.rs");
pub const SHIM_LIB_RS: &str = include_str!("../../templates/shim/src/lib.rs");
pub const SHIM_RUNTIME_RS: &str = include_str!("../../templates/shim/src/runtime.rs");
pub const SHIM_CXX_RS: &str = include_str!("../../templates/shim/src/cxx.rs");
pub const SHIM_INERT_RS: &str = include_str!("../../templates/shim/src/inert.rs");
pub const SHIM_THREADS_RS: &str = include_str!("../../templates/shim/src/threads.rs");
/// The Windows DLL's modules (rendered only for Windows targets).
pub const SHIM_WINDOWS: &[(&str, &str)] = &[
    ("src/windows/mod.rs", include_str!("../../templates/shim/src/windows/mod.rs")),
    ("src/windows/api.rs", include_str!("../../templates/shim/src/windows/api.rs")),
    ("src/windows/hooks.rs", include_str!("../../templates/shim/src/windows/hooks.rs")),
    ("src/windows/patch.rs", include_str!("../../templates/shim/src/windows/patch.rs")),
];
pub const SHIM_MACOS_RS: &str = include_str!("../../templates/shim/src/macos.rs");
pub const SHIM_MACOS_CXX_RS: &str = include_str!("../../templates/shim/src/macos_cxx.rs");
/// A macOS prefixed library's start-up and exit (no zone, no interposing).
pub const SHIM_MACOS_PREFIXED_RS: &str = include_str!("../../templates/shim/src/macos_prefixed.rs");
/// The Rust heap around a C/C++ heap's xx* functions.
pub const XX_HEAP_RS: &str = include_str!("../../templates/xx/heap.rs");
/// An emitted crate's build-script module that compiles a C/C++ heap with cc.
pub const XX_BUILD_HEAP_RS: &str = include_str!("../../templates/xx/build_heap.rs");

#[cfg(test)]
mod tests {
    use super::*;

    /// A file an earlier alloc8 of the same version wrote, and this one
    /// does not embed, is removed; the embedded ones stay.
    #[test]
    fn a_module_moved_since_the_last_write_leaves_no_stale_copy() {
        let cache = tempfile::tempdir().unwrap();
        let dir = write_alloc8_crate(cache.path()).unwrap();
        assert!(dir.file_name().unwrap().to_str().unwrap().starts_with(&format!("alloc8-{}-", ALLOC8_VERSION)));
        let stale = dir.join("src/os.rs");
        std::fs::write(&stale, "pub fn moved() {}\n").unwrap();
        std::fs::create_dir_all(dir.join("src/gone")).unwrap();
        std::fs::write(dir.join("src/gone/mod.rs"), "\n").unwrap();
        write_alloc8_crate(cache.path()).unwrap();
        assert!(!stale.exists() && !dir.join("src/gone/mod.rs").exists());
        assert!(ALLOC8_CRATE.iter().all(|(rel, _)| dir.join(rel).is_file()));
    }

    /// Every source file of crates/alloc8 (tests aside) must be embedded, or
    /// an installed alloc8 would write an incomplete crate.
    #[test]
    fn the_whole_alloc8_crate_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/alloc8");
        let mut stack = vec![root.join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().unwrap() != "tests.rs" {
                    let rel = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    let embedded = ALLOC8_CRATE.iter().find(|(name, _)| *name == rel);
                    assert!(embedded.is_some(), "{} is not embedded in ALLOC8_CRATE", rel);
                }
            }
        }
    }
}
