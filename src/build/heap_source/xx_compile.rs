//! Turns a C/C++ heap into one static archive (`liballoc8xx.a`) that the shim
//! crate links: sources are compiled with the command the `cc` crate makes
//! (gcc for C, g++ for C++, mingw-w64 for Windows, or `$CC`/`$CXX`), through
//! the object cache (xx_cache.rs), a prebuilt object is archived, a prebuilt
//! archive is copied. This runs in alloc8 itself, before cargo, so the objects can be
//! inspected before anything is linked and the compiler's errors reach the
//! user as the compiler wrote them.

use super::xx::{Lang, Sources, XxInput};
use super::xx_cache::{self, UnitError};
use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The archive's library name (`-l` name).
pub const LIB_NAME: &str = "alloc8xx";

#[derive(Debug)]
pub enum CompileError {
    /// The compiler rejected the sources; its own output is already on stderr.
    Compiler {
        failed: Vec<PathBuf>,
    },
    /// No compiler or archiver could be run, or cc refused the settings.
    Tool(String),
    Io(PathBuf, String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Compiler { failed } if failed.is_empty() => {
                write!(f, "the heap does not compile (the compiler's errors are above)")
            }
            CompileError::Compiler { failed } => {
                let names: Vec<String> = failed.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{} does not compile (the compiler's errors are above)", names.join(", "))
            }
            CompileError::Tool(e) => write!(f, "cannot compile the heap: {}", e),
            CompileError::Io(p, e) => write!(f, "cannot write {}: {}", p.display(), e),
        }
    }
}

impl std::error::Error for CompileError {}

/// What cc reports while it makes an archive: its stderr lines.
#[derive(Default)]
struct Messages {
    lines: Mutex<Vec<String>>,
}

impl cc::BuildMessageLogger for Messages {
    fn log(&self, kind: cc::BuildMessageKind, msg: cc::BuildMessage<'_>, _extra: &dyn Any) {
        if let cc::BuildMessageKind::StderrForwarding = kind {
            self.lines.lock().unwrap().push(msg.to_string());
        }
    }
}

/// Writes `<dir>/liballoc8xx.a` from `input`; the file is replaced only when
/// its contents change, so cargo relinks only then. Objects come from the
/// cache (xx_cache.rs) when nothing they were made of changed; when none had
/// to be compiled and the archive holds exactly them, it is left as it is.
/// `verbose` shows the compiler's warnings of a successful build too.
/// `target`: the Rust target triple the shim is built for (None: this machine).
/// Sources are compiled with `codegen` before their own flags (see
/// codegen::c_flags). Returns the archive and every file it was made from
/// (sources and the headers the compiler read, or the prebuilt file).
pub fn archive(
    input: &XxInput,
    dir: &Path,
    target: Option<&str>,
    codegen: &[&str],
    verbose: bool,
) -> Result<(PathBuf, Vec<PathBuf>), CompileError> {
    let dest = dir.join(format!("lib{}.a", LIB_NAME));
    // Per process: two alloc8 runs may build the same heap at once.
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| CompileError::Io(work.clone(), e.to_string()))?;
    let messages = Arc::new(Messages::default());
    let mut read = Vec::new();
    let built = match input {
        XxInput::Sources(sources) => match compile(sources, target, codegen, verbose)? {
            Compiled { stamp, read, .. } if std::fs::read_to_string(stamp_path(dir)).ok() == Some(stamp.clone()) && dest.is_file() => {
                let _ = std::fs::remove_dir_all(&work);
                return Ok((dest, read));
            }
            Compiled { objects, stamp, read: r } => {
                read = r;
                let _ = std::fs::remove_file(stamp_path(dir));
                let archive =
                    builder(&work, target, &messages).try_create_archive(LIB_NAME, &objects).map_err(|e| CompileError::Tool(e.to_string()));
                archive.map(|a| (a, Some(stamp)))
            }
        },
        XxInput::Prebuilt(path) if path.extension().map_or(false, |e| e == "o") => {
            read.push(path.clone());
            builder(&work, target, &messages)
                .try_create_archive(LIB_NAME, [path])
                .map(|a| (a, None))
                .map_err(|e| CompileError::Tool(e.to_string()))
        }
        XxInput::Prebuilt(path) => {
            read.push(path.clone());
            Ok((path.clone(), None))
        }
    };
    let lines = messages.lines.lock().unwrap();
    if built.is_err() || verbose {
        for line in lines.iter() {
            crate::output::errln!("{}", line);
        }
    }
    let (built, stamp) = built?;
    let new = std::fs::read(&built).map_err(|e| CompileError::Io(built.clone(), e.to_string()))?;
    if std::fs::read(&dest).map(|old| old != new).unwrap_or(true) {
        let tmp = dir.join(format!(".lib{}.a.{}", LIB_NAME, std::process::id()));
        std::fs::write(&tmp, &new).map_err(|e| CompileError::Io(tmp.clone(), e.to_string()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| CompileError::Io(dest.clone(), e.to_string()))?;
    }
    if let Some(stamp) = stamp {
        std::fs::write(stamp_path(dir), stamp).map_err(|e| CompileError::Io(stamp_path(dir), e.to_string()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok((dest, read))
}

/// Names the objects the archive was last made of.
fn stamp_path(dir: &Path) -> PathBuf {
    dir.join(format!("lib{}.a.objects", LIB_NAME))
}

/// The heap's objects, a stamp naming exactly them, and the files they were
/// compiled from.
struct Compiled {
    objects: Vec<PathBuf>,
    stamp: String,
    read: Vec<PathBuf>,
}

/// Each language's units with its compiler command (cc's flags for it),
/// through the object cache; every unit that fails is reported at once.
fn compile(sources: &Sources, target: Option<&str>, codegen: &[&str], verbose: bool) -> Result<Compiled, CompileError> {
    let cache = crate::build::cache::dir().join("xx-objects");
    let mut objects = Vec::new();
    let mut failed = Vec::new();
    for l in [Lang::C, Lang::Cxx] {
        if !sources.has(l) {
            continue;
        }
        let files: Vec<PathBuf> = sources.files.iter().filter(|f| super::xx::lang(f) == Some(l)).cloned().collect();
        // The target too: the same heap built for Windows gets mingw-w64.
        let settings = format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            target, l, codegen, sources.include, sources.defines, sources.flags, sources.c_std, sources.cxx_std
        );
        let key = xx_cache::settings_key(&settings);
        let command = match xx_cache::remembered(&cache, &key) {
            Some(c) => c,
            None => {
                let c = compiler_command(sources, l, target, codegen, &cache)?;
                xx_cache::remember(&cache, &key, &c);
                c
            }
        };
        match xx_cache::compile(&command, &files, &cache, verbose) {
            Ok(objs) => objects.extend(objs),
            Err(errors) => {
                for e in errors {
                    match e {
                        UnitError::Rejected { source, stderr } => {
                            eprint!("{}", stderr);
                            failed.push(source);
                        }
                        UnitError::Tool(e) => return Err(CompileError::Tool(e)),
                    }
                }
            }
        }
    }
    if !failed.is_empty() {
        failed.sort_by_key(|f| sources.files.iter().position(|s| s == f));
        return Err(CompileError::Compiler { failed });
    }
    if verbose {
        let compiled = objects.iter().filter(|o| o.compiled).count();
        eprintln!("alloc8: compiled {} of {} source(s); the others' objects are unchanged in the cache", compiled, objects.len());
    }
    // The objects' bytes, not only their keys: a key names a source's text,
    // and a header it includes can change under the same key (the entry is
    // then compiled again, by this build or another one since this
    // archive was made).
    let mut parts = Vec::new();
    for o in &objects {
        let bytes = xx_cache::file_digest(&o.path).ok_or_else(|| CompileError::Io(o.path.clone(), "cannot read".into()))?;
        parts.push(format!("{} {}", o.key, bytes));
    }
    let keys: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let stamp = xx_cache::digest(&keys);
    let mut read: Vec<PathBuf> = objects.iter().flat_map(|o| std::iter::once(o.source.clone()).chain(o.read.iter().cloned())).collect();
    read.sort();
    read.dedup();
    Ok(Compiled { stamp, objects: objects.into_iter().map(|o| o.path).collect(), read })
}

/// The compiler and flags cc chooses for the sources of language `l` (cc
/// only assembles the command; the object cache runs it per unit).
fn compiler_command(
    sources: &Sources,
    l: Lang,
    target: Option<&str>,
    codegen: &[&str],
    scratch: &Path,
) -> Result<xx_cache::CompilerCommand, CompileError> {
    let mut b = builder(scratch, target, &Arc::new(Messages::default()));
    b.cpp(l == Lang::Cxx);
    for i in &sources.include {
        b.include(i);
    }
    for (name, value) in &sources.defines {
        b.define(name, value.as_deref());
    }
    let std = if l == Lang::C { &sources.c_std } else { &sources.cxx_std };
    if let Some(std) = std {
        b.std(std);
    }
    // alloc8's code generation first: the heap's own flags may override it.
    for flag in codegen.iter().copied().chain(sources.flags.iter().map(String::as_str)) {
        b.flag(flag);
    }
    let tool = b.try_get_compiler().map_err(|e| CompileError::Tool(e.to_string()))?;
    xx_cache::CompilerCommand::from_tool(&tool)
        .ok_or_else(|| CompileError::Tool("the compiler command has arguments that are not UTF-8 (include directories?)".into()))
}

/// The directories this machine's compiler searches for `#include <...>` in
/// the heap's languages, as its `-v` lists them (the system's among them):
/// what `--emit-crate` leaves out of the crate. `scratch` is cc's out dir.
pub fn system_dirs(sources: &Sources, scratch: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (l, name) in [(Lang::C, "c"), (Lang::Cxx, "c++")] {
        if !sources.has(l) {
            continue;
        }
        let mut b = builder(scratch, None, &Arc::new(Messages::default()));
        b.cpp(l == Lang::Cxx);
        let Ok(tool) = b.try_get_compiler() else { continue };
        let mut cmd = tool.to_command();
        cmd.args(["-E", "-v", "-x", name, "/dev/null"]).stdout(std::process::Stdio::null()).stdin(std::process::Stdio::null());
        let Ok(out) = cmd.output() else { continue };
        let text = String::from_utf8_lossy(&out.stderr);
        let listed =
            text.lines().skip_while(|l| !l.starts_with("#include <...>")).skip(1).take_while(|l| !l.starts_with("End of search list"));
        for line in listed {
            let dir = PathBuf::from(line.trim().trim_end_matches(" (framework directory)"));
            dirs.push(dir.canonicalize().unwrap_or(dir));
        }
    }
    dirs
}

/// cc outside a build script: every setting it would read from cargo is given.
/// A Windows target gets mingw-w64 (`x86_64-w64-mingw32-gcc`), as cc picks it.
fn builder(out_dir: &Path, target: Option<&str>, messages: &Arc<Messages>) -> cc::Build {
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let mut b = cc::Build::new();
    b.target(target.unwrap_or(&host))
        .host(&host)
        .opt_level(2)
        .debug(false)
        .pic(true)
        .out_dir(out_dir)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .cargo_debug(false)
        .emit_rerun_if_env_changed(false)
        .message_logger(Some(messages.clone() as Arc<dyn cc::BuildMessageLogger>));
    b
}
