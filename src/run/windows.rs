//! `alloc8 run --target x86_64-pc-windows-gnu`: the same promise as on Linux
//! (the DLL came alive in the program, here is what the heap did, the
//! program's status) for a Windows program under wine. There is no preload
//! variable on Windows: a small launcher (templates/windows/inject.c, built
//! with mingw-w64 on first use) starts the program suspended, loads the DLL
//! into it with a remote LoadLibraryW, and resumes it, so the DLL is in place
//! before the program's first allocation.

use super::RunArgs;
use super::{emit, report, table, wait, Exit, NOT_ALIVE};
use crate::build::cache;
use crate::build::target;
use crate::build::{self, BuildOptions, Invocation};
use crate::check::{self, mode::Detected};
use crate::contract::Mode;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const INJECT_C: &str = include_str!("../../templates/windows/inject.c");

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.no_inherit {
        bail!("--no-inherit does not apply on Windows: the DLL is injected into the launched program only");
    }
    let mut output = args.output.as_deref().map(super::output_file::OutputFile::claim).transpose()?;
    let dll = match (&args.lib, &args.heap) {
        (Some(lib), _) => dll_from_lib(lib)?,
        (None, Some(heap)) => dll_from_heap(heap, args.threads, args.verbose)?,
        (None, None) => unreachable!("clap requires --lib or --heap"),
    };
    if !target::on_path("wine") {
        bail!("running a Windows program needs wine: `{}`", target::APT);
    }
    let injector = injector()?;
    let name = args.command[0].to_string_lossy().into_owned();
    // A program given by path runs from there (wine maps / to Z:); a bare
    // name is looked up by wine (its PATH, system32).
    let program = match Path::new(&name) {
        p if p.exists() => win_path(&p.canonicalize().with_context(|| format!("cannot use {}", name))?),
        _ => name.clone(),
    };

    // In a directory of its own (see run/mod.rs): nothing can create it again.
    let report_dir = tempfile::Builder::new().prefix("alloc8-run-").tempdir().context("cannot create the report's directory")?;
    let report_path = report_dir.path().canonicalize().context("cannot locate the report's directory")?.join("report.jsonl");
    let mut cmd = Command::new("wine");
    cmd.arg(&injector).arg(win_path(&dll)).arg(&program).args(&args.command[1..]);
    cmd.env("ALLOC8_REPORT", win_path(&report_path));
    if std::env::var_os("WINEDEBUG").is_none() {
        cmd.env("WINEDEBUG", "-all");
    }
    let status = wait::spawn_and_wait(&mut cmd).map_err(|e| Exit::new(127, format!("cannot run wine: {}", e)))?;

    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let rows = report::processes(&text);
    let base = file_name(&name);
    // The launched program's row: wine reports Windows pids and paths.
    let top = rows.iter().find(|r| r.exe.as_deref().map_or(false, |e| file_name(e).eq_ignore_ascii_case(&base)));
    let alive = top.is_some();
    let bound = top.and_then(|r| r.bound).unwrap_or(false);
    let ended = match status.signal {
        Some(sig) => format!("was killed by {}", wait::signal_name(sig)),
        None => format!("exited with status {}", status.code),
    };
    let failure = match (status.code, alive, bound) {
        (125, false, _) => Some(format!("the DLL could not be injected into {} (the launcher's error is above)", name)),
        (127, false, _) => Some(format!("{} could not be started under wine", name)),
        (_, false, _) => Some(format!("the DLL never came alive in {}: nothing it did ran on the heap. The program {}.", name, ended)),
        (_, true, false) => Some(format!(
            "the DLL loaded in {} but the program's own C runtime is not one it took over (none, or a static one like MSVC's /MT): \
             its allocations never reached the heap. The program {}.",
            name, ended
        )),
        _ => None,
    };
    let exit_code = match (&failure, status.code) {
        (Some(_), 127) if !alive => 127,
        (Some(_), _) => NOT_ALIVE,
        (None, _) => status.exit_code(),
    };
    if !args.quiet {
        let rendered = if args.json {
            format!(
                "{}\n",
                serde_json::json!({
                    "program": args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
                    "target": target::WINDOWS_GNU,
                    "library": dll,
                    "alive": alive,
                    "bound": bound,
                    "status": status.json(),
                    "exit_code": exit_code,
                    "processes": rows,
                })
            )
        } else {
            let mut out = String::new();
            if !rows.is_empty() {
                let heap = top.or(rows.first()).and_then(|r| r.heap.clone()).unwrap_or_else(|| "?".into());
                let c_heap = std::fs::read(&dll).map_or(false, |data| super::library::defines_xxmalloc(&data));
                out.push_str(&table::text(&rows, args.all, &format!("heap {} ({}, injected under wine)", heap, dll.display()), c_heap));
            }
            out.push_str(&format!("alloc8: {} {}\n", name, ended));
            out
        };
        emit(output.as_mut(), &rendered)?;
    }
    if let Some(message) = failure {
        crate::output::errln!("error: {}", message);
    }
    Ok(ExitCode::from(exit_code))
}

/// A DLL that exports the CRT's malloc family (an alloc8 redirect DLL or similar).
fn dll_from_lib(lib: &Path) -> Result<PathBuf> {
    let data = check::input::read(lib)?;
    let abs = lib.canonicalize().map_err(|e| anyhow!("cannot use --lib {}: {}", lib.display(), e))?;
    let parsed = check::Library::parse(lib, &data)?;
    if parsed.format != check::library::Format::Pe {
        bail!(
            "--lib {} is not a Windows DLL; with --target {} give a DLL `alloc8 build --target {}` made",
            lib.display(),
            target::WINDOWS_GNU,
            target::WINDOWS_GNU
        );
    }
    match check::mode::detect(&parsed).0 {
        Detected::Interposer => Ok(abs),
        Detected::Prefixed { prefix } => bail!(
            "{} only exports {}_malloc & co.: injecting it replaces nothing; build the heap with `--mode interpose`",
            lib.display(),
            prefix
        ),
        _ => bail!("{} is not an allocator DLL: it exports no malloc", lib.display()),
    }
}

fn dll_from_heap(heap: &Path, threads: bool, verbose: bool) -> Result<PathBuf> {
    let ready = build::ready::resolve(heap)?;
    let (heap, threads) = (ready.path.as_path(), threads || ready.thread_hooks);
    let source = heap.canonicalize().map_err(|e| anyhow!("cannot use --heap {}: {}", heap.display(), e))?;
    // The cached library's name: any file name gives a valid one.
    let stem: String = source
        .file_stem()
        .map(|s| s.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect())
        .unwrap_or_else(|| "heap".into());
    let key = cache::hash(&[&source.to_string_lossy(), if threads { "threads" } else { "" }, target::WINDOWS_GNU]);
    let opts = BuildOptions {
        heap: heap.to_path_buf(),
        mode: Mode::Interpose,
        prefix: String::new(),
        out: cache::dir().join("run-windows"),
        name: Some(format!("{}-{}", stem, &key[..8])),
        threads,
        checked: Default::default(),
        target: Some(target::WINDOWS_GNU.to_string()),
        emit_crate: None,
        verbose,
        invocation: Invocation::Run,
    };
    let built = build::build(&opts)?;
    built
        .artifacts
        .into_iter()
        .find(|p| p.extension().map_or(false, |e| e == "dll"))
        .ok_or_else(|| anyhow!("building heap {} produced no DLL", heap.display()))
}

/// The launcher, compiled with mingw-w64 into the cache once per version of its source.
fn injector() -> Result<PathBuf> {
    let dir = cache::dir().join("windows");
    let exe = dir.join(format!("alloc8-inject-{}.exe", &cache::hash(&[INJECT_C])[..12]));
    if exe.exists() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let src = dir.join("inject.c");
    std::fs::write(&src, INJECT_C).with_context(|| format!("cannot write {}", src.display()))?;
    let tmp = exe.with_extension(format!("tmp{}", std::process::id()));
    let out = Command::new(target::MINGW_GCC)
        .args(["-O2", "-municode", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .with_context(|| format!("cannot run {}: `{}`", target::MINGW_GCC, target::APT))?;
    if !out.status.success() {
        bail!("cannot build the injection launcher: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::rename(&tmp, &exe).with_context(|| format!("cannot write {}", exe.display()))?;
    Ok(exe)
}

/// A Unix path as wine's programs see it (drive Z: is /).
fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

fn file_name(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_string()
}
