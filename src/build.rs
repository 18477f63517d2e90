//! `alloc8 build`: heap in, audited shim library out.

use crate::audit;
use crate::cache;
use crate::cargo_build::{self, CargoBuild, Outcome};
use crate::cli::BuildArgs;
use crate::contract::{self, Mode, Platform};
use crate::header;
use crate::heap_source::{xx, HeapKind, HeapSource};
use crate::render::{self, ShimSpec};
use crate::static_archive;
use crate::target::{self, WindowsToolchain};
use crate::templates;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct BuildOptions {
    pub heap: PathBuf,
    pub mode: Mode,
    pub prefix: String,
    pub out: PathBuf,
    pub name: Option<String>,
    pub threads: bool,
    /// `--checked`: the heap behind alloc8's checking layer.
    pub checked: bool,
    /// `--target`: None builds for the host.
    pub target: Option<String>,
    /// `--emit-crate`: write the crate there instead of building it.
    pub emit_crate: Option<PathBuf>,
    pub verbose: bool,
}

impl BuildOptions {
    pub fn from_args(args: &BuildArgs) -> Result<BuildOptions> {
        let prefix = match (args.mode, &args.prefix) {
            (Mode::Prefixed, None) => bail!("prefixed mode needs a prefix: add `--prefix NAME` (gives NAME_malloc, NAME_free, ...)"),
            (Mode::Prefixed, Some(p)) if !contract::valid_prefix(p) => bail!(
                "--prefix {:?} cannot start C identifiers; use letters, digits and _ (not starting with a digit), e.g. `--prefix myheap`",
                p
            ),
            (Mode::Prefixed, Some(p)) => p.clone(),
            (Mode::Interpose, Some(_)) => bail!("--prefix only applies to `--mode prefixed`"),
            (Mode::Interpose, None) => String::new(),
        };
        if args.threads && args.mode == Mode::Prefixed {
            bail!(
                "--threads needs `--mode interpose`: it interposes pthread_create, and a prefixed library \
                 leaves everything of the system's alone"
            );
        }
        if args.checked && args.mode == Mode::Prefixed {
            bail!(
                "--checked builds an interposing library (the checking layer sees every allocation of the program); \
                 build it with `--mode interpose`"
            );
        }
        if let Some(name) = &args.name {
            if name.is_empty() || name.contains(['/', '\\']) {
                bail!("--name {:?} must be a plain file name (the library becomes lib<NAME>.so)", name);
            }
        }
        Ok(BuildOptions {
            heap: args.heap.clone(),
            mode: args.mode,
            prefix,
            out: args.out.clone(),
            name: args.name.clone(),
            threads: args.threads,
            checked: args.checked,
            target: args.target.clone(),
            emit_crate: args.emit_crate.clone(),
            verbose: args.verbose,
        })
    }
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
    if platform == Platform::Macos && opts.mode == Mode::Prefixed {
        bail!("prefixed mode is not available for macOS targets yet; build with `--mode interpose`");
    }
    if opts.checked && (platform != Platform::Linux || !target::checked_arch(opts.target.as_deref())) {
        bail!("--checked is available for Linux on x86-64 and AArch64 (the checking layer's stubs and index are written for them); build without it");
    }
    if opts.checked && opts.emit_crate.is_none() {
        checked_toolchain()?;
    }
    let heap = HeapSource::open(&opts.heap)?;
    if matches!(heap.kind, HeapKind::Xx(_)) && platform != Platform::Linux {
        bail!("C/C++ heaps (the xxmalloc convention) are built for Linux only so far; build without --target");
    }
    if let Some(dir) = &opts.emit_crate {
        target::emit_crate(dir, &heap, opts.mode, &opts.prefix, platform, opts.threads, opts.checked)?;
        return Ok(Built { emitted: Some(dir.clone()), artifacts: Vec::new(), mode: opts.mode, symbols: 0, notes: Vec::new() });
    }
    // Windows: Debian's rustc 1.63 and cargo with mingw-w64 (src/target.rs).
    let windows = match platform {
        Platform::Windows => Some(windows_preflight(&opts.heap, &heap)?),
        _ => None,
    };
    if let (Some(t), None) = (&opts.target, &windows) {
        target::require_installed(t, platform)?;
    }
    let cache = cache::dir();
    let alloc8_dir = cache.join(format!("alloc8-{}", templates::ALLOC8_VERSION));
    for (rel, text) in templates::ALLOC8_CRATE {
        cache::write_if_changed(&alloc8_dir.join(rel), text)?;
    }

    let key = cache::hash(&[
        &opts.heap.canonicalize()?.to_string_lossy(),
        &format!("{:?}", opts.mode),
        &opts.prefix,
        if opts.threads { "threads" } else { "" },
        opts.target.as_deref().unwrap_or(""),
        if opts.checked { "checked" } else { "" },
    ]);
    let crate_name = format!("alloc8_shim_{}_{}", sanitize(&heap.name), &key[..8]);
    let crate_dir = cache.join("shims").join(&crate_name);
    let stem = match (&opts.name, opts.mode) {
        (Some(name), _) => name.clone(),
        (None, Mode::Prefixed) => opts.prefix.clone(),
        (None, Mode::Interpose) => heap.name.clone(),
    };
    let soname = match platform {
        Platform::Windows => format!("{}.dll", stem),
        Platform::Macos => format!("lib{}.dylib", stem),
        Platform::Linux => format!("lib{}.so", stem),
    };
    // A C/C++ heap is compiled and inspected first: what it lacks or
    // clashes with is reported by name, not as a link failure.
    let xx = match &heap.kind {
        HeapKind::Xx(input) => {
            Some(xx::prepare(input, &opts.heap, &crate_dir.join("native"), opts.mode, &opts.prefix, opts.threads, opts.verbose)?)
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
    };
    for (rel, text) in render::render(&spec) {
        cache::write_if_changed(&crate_dir.join(rel), &text)?;
    }

    let manifest = crate_dir.join("Cargo.toml");
    let outcome = cargo_build::build(&CargoBuild {
        manifest: &manifest,
        // Another rustc: its own target dir, so neither toolchain invalidates the other's.
        target_dir: &cache.join(if windows.is_some() { "target-windows" } else { "target" }),
        target: opts.target.as_deref(),
        verbose: opts.verbose,
        cargo: windows.as_ref().map(|w| w.cargo.as_path()),
        env: windows.as_ref().map(|w| w.env()).unwrap_or_default(),
        offline: windows.is_some(),
    })?;
    let files = match outcome {
        Outcome::Built(files) => files,
        Outcome::CompileErrors { shim_assertions } => match shim_assertions.first() {
            Some(text) => bail!("heap {}: {}", opts.heap.display(), text),
            None if windows.is_some() => bail!(
                "heap {} does not compile for {} with Debian's rustc 1.63 (the compiler's errors are above): \
                 a Windows heap must be edition 2021, 1.63-clean and get its memory from Windows (VirtualAlloc, HeapAlloc), not libc",
                opts.heap.display(),
                target::WINDOWS_GNU
            ),
            None => bail!("heap {} does not compile (the compiler's errors are above)", opts.heap.display()),
        },
        Outcome::CargoFailed if windows.is_some() => bail!(
            "cargo could not build the shim for heap {} for {}: Debian's cargo 1.65 builds offline and cannot fetch \
             crates.io dependencies; vendor them (cargo vendor) or use a heap without dependencies (cargo's error is above)",
            opts.heap.display(),
            target::WINDOWS_GNU
        ),
        Outcome::CargoFailed => bail!(
            "cargo could not build the shim for heap {}: a dependency could not be resolved or fetched, \
             or a manifest is invalid (cargo's error is above; offline, only crates already in ~/.cargo can be used)",
            opts.heap.display()
        ),
    };

    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create output directory {}", opts.out.display()))?;
    let mut artifacts = Vec::new();
    let mut symbols = 0;
    if platform == Platform::Windows {
        return finish_windows(opts, &files, &stem, &heap.name);
    }
    for file in &files {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let dest = opts.out.join(format!("lib{}.{}", stem, ext));
        match ext {
            "a" => {
                let keep: Vec<String> =
                    contract::shim_exports(platform, opts.mode, &opts.prefix, opts.threads).into_iter().map(|(n, _)| n).collect();
                // Sealing takes a second: keep the sealed archive beside
                // cargo's and redo it only when cargo rebuilt the raw one.
                let sealed = file.with_extension("sealed.a");
                if !is_newer(&sealed, file) {
                    static_archive::seal(file, &sealed, &keep, &opts.prefix)?;
                }
                copy_atomically(&sealed, &dest)?;
                verify_archive(&dest, &keep)?;
            }
            "so" | "dylib" => {
                copy_atomically(file, &dest)?;
                symbols = verify_exports(&dest, platform, opts.mode, &opts.prefix, opts.threads)?;
            }
            _ => copy_atomically(file, &dest)?,
        }
        artifacts.push(dest);
    }
    if opts.mode == Mode::Prefixed {
        let dest = opts.out.join(format!("{}.h", stem));
        let text = header::render(platform, &opts.prefix, &stem, &heap.name);
        std::fs::write(&dest, text).with_context(|| format!("cannot write {}", dest.display()))?;
        artifacts.push(dest);
    }
    let mut notes = Vec::new();
    if opts.mode == Mode::Prefixed && xx.as_ref().map_or(false, |x| x.provided.cxx) {
        notes.push(format!("lib{}.a holds a C++ heap: link programs that use it with -lstdc++ too", stem));
    }
    Ok(Built { emitted: None, artifacts, mode: opts.mode, symbols, notes })
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
    if let crate::heap_source::HeapKind::File { dependencies, .. } = &heap.kind {
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
fn finish_windows(opts: &BuildOptions, files: &[PathBuf], stem: &str, heap_name: &str) -> Result<Built> {
    let dll = files
        .iter()
        .find(|f| f.extension().map_or(false, |e| e == "dll"))
        .with_context(|| format!("cargo produced no DLL for {}", opts.heap.display()))?;
    let dest = opts.out.join(format!("{}.dll", stem));
    copy_atomically(dll, &dest)?;
    target::mingw_tool("strip", &["--strip-unneeded".as_ref(), dest.as_os_str()], &dest)?;
    let symbols = verify_exports(&dest, Platform::Windows, opts.mode, &opts.prefix, opts.threads)?;
    let mut artifacts = vec![dest];
    // The import library, naming the DLL as shipped (cargo's names the crate's
    // DLL). Interpose mode too: a program may link the redirect DLL.
    {
        let def = opts.out.join(format!("{}.def", stem));
        let mut text = format!("LIBRARY {}.dll\nEXPORTS\n", stem);
        for (name, _) in contract::shim_exports(Platform::Windows, opts.mode, &opts.prefix, opts.threads) {
            text.push_str(&format!("    {}\n", name));
        }
        std::fs::write(&def, text).with_context(|| format!("cannot write {}", def.display()))?;
        let implib = opts.out.join(format!("lib{}.dll.a", stem));
        let dllname = format!("{}.dll", stem);
        let result = target::mingw_tool(
            "dlltool",
            &["--dllname".as_ref(), dllname.as_ref(), "--input-def".as_ref(), def.as_os_str(), "--output-lib".as_ref(), implib.as_os_str()],
            &implib,
        );
        let _ = std::fs::remove_file(&def);
        result?;
        artifacts.push(implib);
    }
    if opts.mode == Mode::Prefixed {
        let header = opts.out.join(format!("{}.h", stem));
        std::fs::write(&header, header::render(Platform::Windows, &opts.prefix, stem, heap_name))
            .with_context(|| format!("cannot write {}", header.display()))?;
        artifacts.push(header);
    }
    Ok(Built { emitted: None, artifacts, mode: opts.mode, symbols, notes: Vec::new() })
}

/// The artifact goes through the same audit as `alloc8 check`, and must
/// besides export exactly what the contract table says: the same table the
/// renderer used, so a mismatch is a bug to stop on, not to ship.
fn verify_exports(lib: &Path, platform: Platform, mode: Mode, prefix: &str, threads: bool) -> Result<usize> {
    let library = audit::Library::read(lib)?;
    let expected: BTreeSet<String> = contract::shim_exports(platform, mode, prefix, threads).into_iter().map(|(n, _)| n).collect();
    let missing: Vec<_> = expected.difference(&library.defined).cloned().collect();
    if !missing.is_empty() {
        bail!("{} lacks contract symbols: {}", lib.display(), missing.join(", "));
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
        bail!("{} exports allocator symbols its mode must not: {}", lib.display(), stray.join(", "));
    }
    let report = audit::audit(lib, &library);
    let wanted = match mode {
        Mode::Interpose => audit::mode::Detected::Interposer,
        Mode::Prefixed => audit::mode::Detected::Prefixed { prefix: prefix.to_string() },
    };
    if report.mode != wanted || !report.verdict.sound {
        bail!(
            "{} fails its audit ({}); `alloc8 check {}` shows the details",
            lib.display(),
            if report.mode != wanted { format!("detected as {}", report.mode.describe()) } else { report.verdict.summary.clone() },
            lib.display()
        );
    }
    Ok(expected.len())
}

/// The sealed archive must define exactly the exports: anything else global
/// could clash with, or be bound by, other code in the program.
fn verify_archive(lib: &Path, keep: &[String]) -> Result<()> {
    // check's archive reader: the members' global definitions.
    let defined = audit::Library::read(lib)?.defined;
    let expected: BTreeSet<String> = keep.iter().cloned().collect();
    if defined != expected {
        let extra: Vec<_> = defined.difference(&expected).cloned().collect();
        let missing: Vec<_> = expected.difference(&defined).cloned().collect();
        bail!("{} does not define exactly its exports (missing: {}; extra: {})", lib.display(), missing.join(", "), extra.join(", "));
    }
    Ok(())
}

/// Whether `a` exists and was written no earlier than `b`.
fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a >= b)
}

fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    // A program may have the old library mapped: replace the file, do not rewrite it.
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(from, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}
