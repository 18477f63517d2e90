//! `alloc8 build`: heap in, audited shim library out. Nothing is written to
//! the output directory unless the whole build succeeds (staging.rs), never
//! over a file the build reads (inputs.rs), and names that cannot work are
//! refused before cargo runs (names.rs). What cargo built is judged by
//! content, not file times (freshness.rs); docs/promises.md says it all.

pub mod cache;
pub mod cargo_build;
mod cargo_errors;
pub mod checking;
pub mod command;
mod emit_xx;
mod freshness;
pub mod header;
pub mod heap_source;
mod inputs;
mod names;
pub mod ready;
pub mod render;
mod render_macos;
mod render_xx;
pub mod staging;
mod static_archive;
pub mod target;
pub mod templates;

use crate::check;
use crate::contract::{self, Mode, Platform};
use anyhow::{bail, Context, Result};
use cargo_build::{CargoBuild, Outcome};
use heap_source::{codegen, xx, HeapKind, HeapSource};
use names::StemSource;
use render::ShimSpec;
use staging::Staging;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use target::WindowsToolchain;

/// The command a build runs for: its advice names that command's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invocation {
    Build,
    /// `alloc8 run --heap`.
    Run,
}

pub struct BuildOptions {
    pub heap: PathBuf,
    pub mode: Mode,
    pub prefix: String,
    pub out: PathBuf,
    pub name: Option<String>,
    pub threads: bool,
    /// `--checked[=guard]`, `--guard-sample N`: what stands between the program and the heap.
    pub checked: checking::Checking,
    /// `--target`: None builds for the host.
    pub target: Option<String>,
    /// `--emit-crate`: write the crate there instead of building it.
    pub emit_crate: Option<PathBuf>,
    pub verbose: bool,
    pub invocation: Invocation,
}

pub struct Built {
    /// `--emit-crate`: where the crate was written (nothing was built).
    pub emitted: Option<PathBuf>,
    pub artifacts: Vec<PathBuf>,
    pub mode: Mode,
    pub symbols: usize,
    /// What the user must know to use the artifacts (printed after them).
    pub notes: Vec<String>,
}

impl Built {
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Interpose => "interpose",
            Mode::Prefixed => "prefixed",
        }
    }
}

pub fn build(opts: &BuildOptions) -> Result<Built> {
    let platform = target::platform(opts.target.as_deref())?;
    if opts.checked.is_on() && (platform != Platform::Linux || !target::checked_arch(opts.target.as_deref())) {
        bail!(
            "{} is available for Linux on x86-64 and AArch64 (the checking layer's stubs, index and guard pages are written for them); build without it",
            opts.checked.flag()
        );
    }
    if opts.checked.layered() && opts.emit_crate.is_none() {
        checked_toolchain()?;
    }
    let heap = HeapSource::open(&opts.heap)?;
    if matches!(heap.kind, HeapKind::Xx(_)) && platform == Platform::Macos && opts.emit_crate.is_none() {
        bail!(
            "a C/C++ heap (the xxmalloc convention) is built for macOS through a crate: add `--emit-crate DIR`, \
             then run `cargo build --release` in DIR on a Mac (its build script compiles the heap with the cc crate)"
        );
    }
    if let Some(dir) = &opts.emit_crate {
        target::emit_crate(dir, &heap, &opts.heap, opts.mode, &opts.prefix, platform, opts.threads, opts.checked, opts.verbose)?;
        return Ok(Built { emitted: Some(dir.clone()), artifacts: Vec::new(), mode: opts.mode, symbols: 0, notes: Vec::new() });
    }
    let (stem, stem_source) = match (&opts.name, opts.mode) {
        (Some(name), _) => (name.clone(), StemSource::Name),
        (None, Mode::Prefixed) => (opts.prefix.clone(), StemSource::Prefix),
        (None, Mode::Interpose) => (heap.name.clone(), StemSource::Heap),
    };
    names::check_stem(&stem, stem_source, opts.mode, platform)?;
    // Before --out: under `run --heap`, --out is in the cache.
    let cache = cache::usable_dir()?;
    names::check_out_dir(&opts.out)?;
    let outputs = inputs::output_names(platform, opts.mode, &stem);
    inputs::refuse_overwrite(&opts.out, &outputs, &inputs::known(&heap, &opts.heap))?;
    // Windows: Debian's rustc 1.63 and cargo with mingw-w64 (target.rs).
    let windows = match platform {
        Platform::Windows => Some(windows_preflight(&opts.heap, &heap)?),
        _ => None,
    };
    if let (Some(t), None) = (&opts.target, &windows) {
        target::require_installed(t, platform)?;
    }
    let alloc8_dir = templates::write_alloc8_crate(&cache)?;

    let key = cache::hash(&[
        &opts.heap.canonicalize()?.to_string_lossy(),
        &format!("{:?}", opts.mode),
        &opts.prefix,
        if opts.threads { "threads" } else { "" },
        opts.target.as_deref().unwrap_or(""),
        &opts.checked.key(),
    ]);
    let crate_name = format!("alloc8_shim_{}_{}", sanitize(&heap.name), &key[..8]);
    let crate_dir = cache.join("shims").join(&crate_name);
    let soname = match platform {
        Platform::Windows => format!("{}.dll", stem),
        Platform::Macos => format!("lib{}.dylib", stem),
        Platform::Linux => format!("lib{}.so", stem),
    };
    // A C/C++ heap is compiled and inspected first: what it lacks or
    // clashes with is reported by name, not as a link failure.
    let xx = match &heap.kind {
        HeapKind::Xx(input) => {
            let native = crate_dir.join("native");
            let prepared =
                xx::prepare(input, &opts.heap, &native, opts.mode, &opts.prefix, opts.threads, opts.target.as_deref(), opts.verbose)?;
            // The headers the sources include are known now, before anything is written.
            let read: Vec<inputs::Input> = prepared
                .inputs
                .iter()
                .map(|p| (p.clone(), if xx::lang(p).is_some() { "a source of the heap" } else { "a file the heap's sources include" }))
                .collect();
            inputs::refuse_overwrite(&opts.out, &outputs, &read)?;
            Some(prepared)
        }
        _ => None,
    };
    let spec = ShimSpec {
        crate_name: &crate_name,
        heap: &heap,
        mode: opts.mode,
        prefix: &opts.prefix,
        soname: &soname,
        platform,
        threads: opts.threads,
        checked: opts.checked,
        alloc8_path: &alloc8_dir,
        xx: xx.as_ref(),
        xx_emitted: None,
    };
    for (rel, text) in render::render(&spec) {
        cache::write_if_changed(&crate_dir.join(rel), &text)?;
    }

    let manifest = crate_dir.join("Cargo.toml");
    let mut env = windows.as_ref().map(|w| w.env()).unwrap_or_default();
    let mut rustc_args = Vec::new();
    if platform == Platform::Linux {
        let triple = opts.target.clone().unwrap_or_else(codegen::host_target);
        env.extend(codegen::cc_env(opts.mode, &triple, |name| std::env::var(name).ok()));
        rustc_args = codegen::direct_call_args(&heap);
    }
    // Another rustc: its own target dir, so neither toolchain invalidates the other's.
    let target_dir = cache.join(if windows.is_some() { "target-windows" } else { "target" });
    let cargo = CargoBuild {
        manifest: &manifest,
        target_dir: &target_dir,
        target: opts.target.as_deref(),
        verbose: opts.verbose,
        cargo: windows.as_ref().map(|w| w.cargo.as_path()),
        env,
        offline: windows.is_some(),
        // rustc's errors in these are consequences of the user's, in their own files.
        generated: &[&crate_dir, &alloc8_dir],
        rustc_args,
    };
    // cargo judges the heap's files by their times: what changed by content
    // since they were last built here is cleaned first.
    let stamps = target_dir.join("alloc8-inputs").join(opts.target.as_deref().unwrap_or("host"));
    let parts = freshness::parts(&heap, &crate_name, &stamps);
    let stale: Vec<&str> = freshness::stale(&parts).iter().map(|p| p.package.as_str()).collect();
    if !stale.is_empty() {
        cargo_build::clean(&cargo, &stale)?;
    }
    let mut cleaned = false;
    let files = loop {
        let files = built_files(cargo_build::build(&cargo)?, opts, windows.is_some(), &cache)?;
        // A damaged artifact cargo takes as fresh (a truncated file) is
        // rebuilt once from clean; if that does not mend it, the cache is
        // the user's to clear.
        let Some(bad) = files.iter().find(|f| !artifact_readable(f)) else { break files };
        if cleaned {
            bail!(
                "cargo's library {} is damaged (not a complete {}) even after a clean rebuild: clear the build cache \
                 (`rm -rf {}`) and build again",
                bad.display(),
                if bad.extension().map_or(false, |e| e == "a") { "archive" } else { "library" },
                cache.display()
            );
        }
        cargo_build::clean(&cargo, &[crate_name.as_str()])?;
        cleaned = true;
    };
    freshness::record(&parts);
    // Now every file cargo read is known: none may be an output either.
    if let Some(lib) = files.iter().find(|f| f.extension().map_or(false, |e| e == "so" || e == "dylib" || e == "dll")) {
        inputs::refuse_overwrite(&opts.out, &outputs, &inputs::read_by_cargo(lib))?;
    }

    // A library that cannot load is not built: check cargo's before anything
    // is written, and leave no older one of the same name behind.
    if let Some(so) = files.iter().find(|f| f.extension().map_or(false, |e| e == "so")) {
        if let Err(e) = ensure_loads(so, &soname, xx.as_ref()) {
            for name in [format!("lib{}.so", stem), format!("lib{}.a", stem), format!("{}.h", stem)] {
                let _ = std::fs::remove_file(opts.out.join(name));
            }
            return Err(e);
        }
    }
    let mut staging = Staging::new(&opts.out)?;
    if platform == Platform::Windows {
        return finish_windows(opts, staging, &files, &stem, &heap.name);
    }
    let mut symbols = 0;
    for file in &files {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let name = format!("lib{}.{}", stem, ext);
        match ext {
            // Sealing is done with GNU ld and objcopy on ELF objects; a Mach-O
            // archive is shipped as cargo made it (see the note).
            "a" if platform == Platform::Macos => {
                staging.copy(file, &name)?;
            }
            "a" => {
                let keep: Vec<String> =
                    contract::shim_exports(platform, opts.mode, &opts.prefix, opts.threads).into_iter().map(|(n, _)| n).collect();
                // Sealing takes a second: keep the sealed archive beside
                // cargo's, with the stamp of the raw one it was made from
                // (cargo writes a new file when it rebuilds: a new inode and
                // change time), and redo it when that differs or the sealed
                // one is damaged.
                let sealed = file.with_extension("sealed.a");
                let from = file.with_extension("sealed.from");
                let raw =
                    std::fs::metadata(file).map(|m| cache::file_stamp(&m)).with_context(|| format!("cannot read {}", file.display()))?;
                if std::fs::read_to_string(&from).ok().as_deref() != Some(raw.as_str()) || !artifact_readable(&sealed) {
                    let _ = std::fs::remove_file(&from);
                    static_archive::seal(file, &sealed, &keep, &opts.prefix)?;
                    cache::write_if_changed(&from, &raw)?;
                }
                let staged = staging.copy(&sealed, &name)?;
                verify_archive(&staged, &sealed, &keep)?;
            }
            "so" | "dylib" => {
                let staged = staging.copy(file, &name)?;
                symbols = verify_exports(&staged, file, platform, opts.mode, &opts.prefix, opts.threads)?;
            }
            _ => {
                staging.copy(file, &name)?;
            }
        }
    }
    if opts.mode == Mode::Prefixed {
        let dest = staging.file(&format!("{}.h", stem));
        let text = header::render(platform, &opts.prefix, &stem, &heap.name);
        std::fs::write(&dest, text).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    let mut notes = Vec::new();
    if opts.mode == Mode::Prefixed && platform == Platform::Macos {
        notes.push(format!(
            "lib{}.a is not sealed on macOS: besides the {}_* functions its Rust runtime's symbols are global; \
             link it into C/C++ programs, and use lib{}.dylib beside other Rust code",
            stem, opts.prefix, stem
        ));
    }
    if opts.mode == Mode::Prefixed && xx.as_ref().map_or(false, |x| x.provided.cxx) {
        notes.push(format!("lib{}.a holds a C++ heap: link programs that use it with -lstdc++ too", stem));
    }
    let artifacts = staging.commit()?;
    Ok(Built { emitted: None, artifacts, mode: opts.mode, symbols, notes })
}

/// The files cargo built, or the error that says why it did not.
fn built_files(outcome: Outcome, opts: &BuildOptions, windows: bool, cache: &Path) -> Result<Vec<PathBuf>> {
    Ok(match outcome {
        Outcome::Built(files) => files,
        Outcome::CompileErrors { shim_assertions, hidden } => match shim_assertions.first() {
            Some(text) => bail!("heap {}: {}", opts.heap.display(), advice_for(text, opts.invocation)),
            None if windows => bail!(
                "heap {} does not compile for {} with Debian's rustc 1.63 (the compiler's errors are above): \
                 a Windows heap must be edition 2021, 1.63-clean and get its memory from Windows (VirtualAlloc, HeapAlloc), not libc",
                opts.heap.display(),
                target::WINDOWS_GNU
            ),
            None if hidden > 0 => bail!(
                "heap {} does not compile (the compiler's errors in it are above; the {} they cause in the generated shim \
                 are not shown, `--verbose` shows them)",
                opts.heap.display(),
                if hidden == 1 { "1 error".to_string() } else { format!("{} errors", hidden) }
            ),
            None => bail!("heap {} does not compile (the compiler's errors are above)", opts.heap.display()),
        },
        Outcome::CargoFailed { cause, disk_full: true } => bail!(
            "disk full: cargo could not build the shim for heap {}{}; free space on the disk that holds {} (the build \
             cache) and build again",
            opts.heap.display(),
            cause.map(|c| format!(": {}", c)).unwrap_or_default(),
            cache.display()
        ),
        Outcome::CargoFailed { cause, .. } if windows => bail!(
            "cargo could not build the shim for heap {} for {}: {} (Debian's cargo 1.65 builds offline and cannot fetch \
             crates.io dependencies; vendor them with cargo vendor, or use a heap without dependencies)",
            opts.heap.display(),
            target::WINDOWS_GNU,
            cause.unwrap_or_else(|| "its error is above".into())
        ),
        Outcome::CargoFailed { cause: Some(cause), .. } => bail!(
            "cargo could not build the shim for heap {}: {}{}",
            opts.heap.display(),
            cause,
            if ["crates.io", "registry", "download", "no matching package"].iter().any(|w| cause.contains(w)) {
                " (without the network, only crates already in ~/.cargo can be used)"
            } else {
                ""
            }
        ),
        Outcome::CargoFailed { cause: None, .. } => {
            bail!("cargo could not build the shim for heap {} (its error is above)", opts.heap.display())
        }
    })
}

/// Whether a library cargo made is whole: it parses as the library or
/// archive it claims to be, every member included.
fn artifact_readable(file: &Path) -> bool {
    if file.extension().map_or(false, |e| e == "a") {
        // The members' headers only, read where they are (cargo's archive is
        // tens of MB): each member must lie within the file.
        let Ok(f) = std::fs::File::open(file) else { return false };
        let Ok(len) = f.metadata().map(|m| m.len()) else { return false };
        let data = object::ReadCache::new(f);
        let Ok(archive) = object::read::archive::ArchiveFile::parse(&data) else { return false };
        return archive.members().all(|m| m.map_or(false, |m| m.file_range().0 + m.file_range().1 <= len));
    }
    check::Library::read(file).is_ok()
}

/// The shim's compile-time assertions name `alloc8 build`'s flags; under
/// `alloc8 run --heap` the same advice is `run`'s.
fn advice_for(text: &str, invocation: Invocation) -> String {
    match invocation {
        Invocation::Build => text.to_string(),
        Invocation::Run => text
            .replace("alloc8 build --threads", "alloc8 run --threads")
            .replace("build it with", "run it with")
            .replace("build without --threads", "run without --threads"),
    }
}

/// `--checked` exports are naked functions (stable since Rust 1.88): an
/// older rustc is named before cargo runs, not left to fail on generated code.
fn checked_toolchain() -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(&rustc)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {:?}; is the Rust toolchain installed?", rustc))?;
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m < 88 => bail!(
            "--checked needs rustc 1.88 or newer (a checked shim's exports are naked functions); {:?} is {} (`rustup update`)",
            rustc,
            version.trim()
        ),
        _ => Ok(()),
    }
}

/// Checks what a Windows build needs before cargo runs: the toolchain, and
/// a heap without crates.io dependencies (Debian's cargo builds offline).
fn windows_preflight(path: &Path, heap: &HeapSource) -> Result<WindowsToolchain> {
    let toolchain = WindowsToolchain::find()?;
    if let crate::build::heap_source::HeapKind::File { dependencies, .. } = &heap.kind {
        if !dependencies.trim().is_empty() {
            let names: Vec<&str> =
                dependencies.lines().filter_map(|l| l.split('=').next()).map(str::trim).filter(|n| !n.is_empty()).collect();
            bail!(
                "heap {} depends on crates.io ({}), which a {} build cannot fetch: Debian's cargo 1.65 builds offline. \
                 Vendor them and build the heap as a crate, or use a heap without dependencies",
                path.display(),
                names.join(", "),
                target::WINDOWS_GNU
            );
        }
    }
    Ok(toolchain)
}

/// The DLL (stripped: 1 MB instead of 14), its import library (made from
/// the contract), and in prefixed mode the header.
fn finish_windows(opts: &BuildOptions, mut staging: Staging, files: &[PathBuf], stem: &str, heap_name: &str) -> Result<Built> {
    let dll = files
        .iter()
        .find(|f| f.extension().map_or(false, |e| e == "dll"))
        .with_context(|| format!("cargo produced no DLL for {}", opts.heap.display()))?;
    // A DLL that needs the mingw runtime's DLLs (a C++ heap's libstdc++)
    // would not load on a Windows without them: they are linked in instead.
    if let Some(pe) = check::Library::read(dll)?.pe {
        let extra = check::pe::non_system(&pe);
        if !extra.is_empty() {
            bail!(
                "{}.dll would import {}, which Windows does not have: link {} statically (the heap's build settings)",
                stem,
                extra.join(", "),
                if extra.len() == 1 { "it" } else { "them" }
            );
        }
    }
    let dllname = format!("{}.dll", stem);
    let staged = staging.copy(dll, &dllname)?;
    target::mingw_tool("strip", &["--strip-unneeded".as_ref(), staged.as_os_str()], &staged)?;
    let symbols = verify_exports(&staged, dll, Platform::Windows, opts.mode, &opts.prefix, opts.threads)?;
    // The import library, naming the DLL as shipped (cargo's names the crate's
    // DLL). Interpose mode too: a program may link the redirect DLL.
    {
        let def = staging.scratch(&format!("{}.def", stem));
        let mut text = format!("LIBRARY {}\nEXPORTS\n", dllname);
        for (name, _) in contract::shim_exports(Platform::Windows, opts.mode, &opts.prefix, opts.threads) {
            text.push_str(&format!("    {}\n", name));
        }
        std::fs::write(&def, text).with_context(|| format!("cannot write {}", def.display()))?;
        let implib = staging.file(&format!("lib{}.dll.a", stem));
        target::mingw_tool(
            "dlltool",
            &["--dllname".as_ref(), dllname.as_ref(), "--input-def".as_ref(), def.as_os_str(), "--output-lib".as_ref(), implib.as_os_str()],
            &implib,
        )?;
    }
    if opts.mode == Mode::Prefixed {
        let header = staging.file(&format!("{}.h", stem));
        std::fs::write(&header, header::render(Platform::Windows, &opts.prefix, stem, heap_name))
            .with_context(|| format!("cannot write {}", header.display()))?;
    }
    let artifacts = staging.commit()?;
    Ok(Built { emitted: None, artifacts, mode: opts.mode, symbols, notes: Vec::new() })
}

/// The artifact goes through the same audit as `alloc8 check`, and must
/// besides export exactly what the contract table says: the same table the
/// renderer used, so a mismatch is a bug to stop on, not to ship.
///
/// `lib` is the staged copy; errors name `cargos`, cargo's own in the cache,
/// which stays for `alloc8 check` when the staged one is removed.
fn verify_exports(lib: &Path, cargos: &Path, platform: Platform, mode: Mode, prefix: &str, threads: bool) -> Result<usize> {
    let library = check::Library::read(lib)?;
    let expected: BTreeSet<String> = contract::shim_exports(platform, mode, prefix, threads).into_iter().map(|(n, _)| n).collect();
    let missing: Vec<_> = expected.difference(&library.defined).cloned().collect();
    if !missing.is_empty() {
        bail!("the built library ({}) lacks contract symbols: {}", cargos.display(), missing.join(", "));
    }
    // Any other export that is an allocator name (ours, prefixed or not) would
    // interpose something the mode promised to leave alone.
    let stray: Vec<_> = library
        .defined
        .iter()
        .filter(|name| !expected.contains(*name))
        .filter(|name| contract::EXPORTS.iter().any(|e| e.name == name.as_str()))
        .cloned()
        .collect();
    if !stray.is_empty() {
        bail!("the built library ({}) exports allocator symbols its mode must not: {}", cargos.display(), stray.join(", "));
    }
    let report = check::audit(lib, &library);
    let wanted = match mode {
        Mode::Interpose => check::mode::Detected::Interposer,
        Mode::Prefixed => check::mode::Detected::Prefixed { prefix: prefix.to_string() },
    };
    if report.mode != wanted || !report.verdict.sound {
        bail!(
            "the built library fails its audit ({}), so nothing was written; `alloc8 check {}` shows the details",
            if report.mode != wanted { format!("detected as {}", report.mode.describe()) } else { report.verdict.summary.clone() },
            cargos.display()
        );
    }
    Ok(expected.len())
}

/// Every undefined symbol of the library resolves the way ld.so resolves it
/// (check::loadable); otherwise the error names each, demangled, with the
/// heap sources that use it when the heap is C/C++.
fn ensure_loads(so: &Path, soname: &str, xx: Option<&xx::Prepared>) -> Result<()> {
    let library = check::Library::read(so)?;
    let Some(found) = check::loadable::check(so, &library) else { return Ok(()) };
    if found.loads() {
        return Ok(());
    }
    let by = |name: &str| xx.and_then(|x| x.references.get(name)).map(|places| places.join(", "));
    let them = if found.undefined.len() == 1 { "it" } else { "them" };
    let advice = if found.undefined.is_empty() {
        "install what is missing".to_string()
    } else if found.undefined.iter().any(|u| by(&u.name).is_some()) {
        format!("the heap uses {them} but defines {them} nowhere: add the source that does (one left out of `sources`?) or the definition")
    } else {
        format!("define {them} in the heap, or link the library that has {them}")
    };
    bail!("{} cannot load: {}; {}", soname, found.explain(&by), advice)
}

/// The sealed archive must define exactly the exports: anything else global
/// could clash with, or be bound by, other code in the program.
fn verify_archive(lib: &Path, sealed: &Path, keep: &[String]) -> Result<()> {
    // check's archive reader: the members' global definitions.
    let defined = check::Library::read(lib)?.defined;
    let expected: BTreeSet<String> = keep.iter().cloned().collect();
    if defined != expected {
        let extra: Vec<_> = defined.difference(&expected).cloned().collect();
        let missing: Vec<_> = expected.difference(&defined).cloned().collect();
        bail!(
            "the sealed archive ({}) does not define exactly its exports (missing: {}; extra: {})",
            sealed.display(),
            missing.join(", "),
            extra.join(", ")
        );
    }
    Ok(())
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27, item 10: a truncated archive or library is not whole.
    #[test]
    fn a_truncated_artifact_is_not_readable() {
        let d = tempfile::tempdir().unwrap();
        let (c, o, a) = (d.path().join("x.c"), d.path().join("x.o"), d.path().join("libx.a"));
        std::fs::write(&c, "int x(void) { return 1; }\nint y[4096] = {1};\n").unwrap();
        assert!(std::process::Command::new("gcc").arg("-c").arg(&c).arg("-o").arg(&o).status().unwrap().success());
        assert!(std::process::Command::new("ar").arg("rcs").arg(&a).arg(&o).status().unwrap().success());
        assert!(artifact_readable(&a));
        let len = std::fs::metadata(&a).unwrap().len();
        std::fs::File::options().write(true).open(&a).unwrap().set_len(len - 1000).unwrap();
        assert!(!artifact_readable(&a));
        let so = d.path().join("libx.so");
        assert!(std::process::Command::new("gcc").arg("-shared").arg(&o).arg("-o").arg(&so).status().unwrap().success());
        assert!(artifact_readable(&so));
        std::fs::File::options().write(true).open(&so).unwrap().set_len(4096).unwrap();
        assert!(!artifact_readable(&so));
    }
}
