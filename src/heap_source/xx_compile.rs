//! Turns a C/C++ heap into one static archive (`liballoc8xx.a`) that the shim
//! crate links: sources are compiled with the `cc` crate (gcc for C, g++ for
//! C++, or `$CC`/`$CXX`), a prebuilt object is archived, a prebuilt archive is
//! copied. This runs in alloc8 itself, before cargo, so the objects can be
//! inspected before anything is linked and the compiler's errors reach the
//! user as the compiler wrote them.

use super::xx::{Lang, Sources, XxInput};
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

/// What cc reports: stderr lines of the commands it runs, and which ones failed.
#[derive(Default)]
struct Messages {
    lines: Mutex<Vec<String>>,
    failed: Mutex<Vec<PathBuf>>,
    /// The source each compile command is for, in order, to name the failed one.
    compiling: Mutex<Option<PathBuf>>,
}

impl cc::BuildMessageLogger for Messages {
    fn log(&self, kind: cc::BuildMessageKind, msg: cc::BuildMessage<'_>, _extra: &dyn Any) {
        match kind {
            cc::BuildMessageKind::StderrForwarding => self.lines.lock().unwrap().push(msg.to_string()),
            cc::BuildMessageKind::CompileCommand => {
                // The command line ends with the source file.
                let text = msg.to_string();
                let file = text.rsplit(' ').next().map(|f| PathBuf::from(f.trim_matches('"')));
                *self.compiling.lock().unwrap() = file;
            }
            cc::BuildMessageKind::CommandFailed { is_detection_cmd: false, .. } => {
                if let Some(f) = self.compiling.lock().unwrap().clone() {
                    self.failed.lock().unwrap().push(f);
                }
            }
            _ => {}
        }
    }
}

/// Writes `<dir>/liballoc8xx.a` from `input`; the file is replaced only when
/// its contents change, so cargo relinks only then. Sources are compiled
/// with `codegen` before their own flags (see codegen::c_flags). `verbose`
/// shows the compiler's warnings of a successful build too.
pub fn archive(input: &XxInput, dir: &Path, codegen: &[&str], verbose: bool) -> Result<PathBuf, CompileError> {
    // Per process: two alloc8 runs may build the same heap at once.
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| CompileError::Io(work.clone(), e.to_string()))?;
    let messages = Arc::new(Messages::default());
    let built = match input {
        XxInput::Sources(sources) => compile(sources, &work, codegen, &messages),
        XxInput::Prebuilt(path) if path.extension().map_or(false, |e| e == "o") => {
            builder(&work, &messages).try_create_archive(LIB_NAME, [path]).map_err(|e| CompileError::Tool(e.to_string()))
        }
        XxInput::Prebuilt(path) => Ok(path.clone()),
    };
    let lines = messages.lines.lock().unwrap();
    if built.is_err() || verbose {
        for line in lines.iter() {
            eprintln!("{}", line);
        }
    }
    let built = built?;
    let dest = dir.join(format!("lib{}.a", LIB_NAME));
    let new = std::fs::read(&built).map_err(|e| CompileError::Io(built.clone(), e.to_string()))?;
    if std::fs::read(&dest).map(|old| old != new).unwrap_or(true) {
        let tmp = dir.join(format!(".lib{}.a.{}", LIB_NAME, std::process::id()));
        std::fs::write(&tmp, &new).map_err(|e| CompileError::Io(tmp.clone(), e.to_string()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| CompileError::Io(dest.clone(), e.to_string()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(dest)
}

fn compile(sources: &Sources, work: &Path, codegen: &[&str], messages: &Arc<Messages>) -> Result<PathBuf, CompileError> {
    let mut objects = Vec::new();
    for l in [Lang::C, Lang::Cxx] {
        if !sources.has(l) {
            continue;
        }
        let mut b = builder(&work.join(if l == Lang::C { "c" } else { "cxx" }), messages);
        b.cpp(l == Lang::Cxx);
        for f in sources.files.iter().filter(|f| super::xx::lang(f) == Some(l)) {
            b.file(f);
        }
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
        for flag in codegen.iter().copied().chain(sources.flags.iter().map(String::as_str)) {
            b.flag(flag);
        }
        match b.try_compile_intermediates() {
            Ok(objs) => objects.extend(objs),
            Err(e) => {
                let failed = messages.failed.lock().unwrap().clone();
                return Err(if failed.is_empty() && messages.lines.lock().unwrap().is_empty() {
                    CompileError::Tool(e.to_string())
                } else {
                    CompileError::Compiler { failed }
                });
            }
        }
    }
    builder(work, messages).try_create_archive(LIB_NAME, &objects).map_err(|e| CompileError::Tool(e.to_string()))
}

/// cc outside a build script: every setting it would read from cargo is given.
fn builder(out_dir: &Path, messages: &Arc<Messages>) -> cc::Build {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let mut b = cc::Build::new();
    b.target(&target)
        .host(&target)
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
