//! Object files of C/C++ heaps, cached by content so that an unchanged heap
//! runs no compiler (DieHard's one translation unit takes half a minute).
//!
//! An entry is keyed on the compiler's identity (its resolved path, size,
//! modification time and `--version`), the full command line cc assembles
//! (flags, defines, include directories, `$CFLAGS`...), the source's path and
//! its bytes. That command line is itself remembered per heap settings, so a
//! build with nothing changed does not even ask cc (which runs the compiler
//! to find out its family). It records every header the compiler read (its `-MD` dependency
//! output) with the header's size, its inode's times (modification and
//! change) and number, and its content digest: a header whose size and inode
//! are unchanged is taken as unchanged, any other is read again and compared
//! by content, so touching a header costs a read, changing it costs a compile
//! of every unit that includes it. The change time (ctime) is what no copy
//! can set back: `cp -p`, `touch -d`, `tar x` and `rsync -a` restore a
//! modification time, never a change time, so a header they put back with
//! other bytes is read, not trusted.
//!
//! Entries live in `<cache>/xx-objects/<key>/` (`<stem>.o`, `deps`) and are
//! written to a temporary directory and renamed into place, so two alloc8
//! runs compiling the same unit never see half an entry.

pub use crate::build::cache::{digest, file_digest};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

/// One translation unit's object, and whether the compiler had to run for it.
#[derive(Debug, Clone)]
pub struct Object {
    pub source: PathBuf,
    pub path: PathBuf,
    /// The cache key (names the entry; the archive's stamp is made of these).
    pub key: String,
    pub compiled: bool,
    /// Every file the compiler read for it (the source, its headers).
    pub read: Vec<PathBuf>,
}

/// What went wrong with one unit.
#[derive(Debug)]
pub enum UnitError {
    /// The compiler ran and refused the source; its stderr is kept to print.
    Rejected { source: PathBuf, stderr: String },
    /// The compiler could not be run, or the cache not written.
    Tool(String),
}

/// A compiler command as cc assembles it for one language of one heap, kept
/// so that a build whose settings did not change asks cc for nothing (cc
/// runs the compiler to detect its family, and that is a compiler run).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CompilerCommand {
    program: String,
    args: Vec<String>,
    /// The variables cc sets on the command (not the inherited environment).
    env: Vec<(String, String)>,
    /// The compiler's resolved path, size and time when it was recorded: a
    /// different binary there (an upgrade) makes the record stale.
    resolved: Option<PathBuf>,
    stat: Option<(u64, u128)>,
    version: String,
}

impl CompilerCommand {
    /// From cc's tool; None if an argument is not UTF-8 (never cached then).
    pub fn from_tool(tool: &cc::Tool) -> Option<CompilerCommand> {
        let command = tool.to_command();
        let text = |s: &std::ffi::OsStr| s.to_str().map(str::to_string);
        let program = text(command.get_program())?;
        let args = command.get_args().map(text).collect::<Option<Vec<_>>>()?;
        let env = tool.get_envs().map(|(k, v)| Some((text(k)?, text(v)?))).collect::<Option<Vec<_>>>()?;
        let resolved = resolve(Path::new(&program));
        let stat = resolved.as_deref().and_then(stat);
        let version = Command::new(&program)
            .arg("--version")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        Some(CompilerCommand { program, args, env, resolved, stat, version })
    }

    /// The same compiler binary is still there.
    fn current(&self) -> bool {
        resolve(Path::new(&self.program)) == self.resolved && self.resolved.as_deref().and_then(stat) == self.stat
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Everything about the compiler and its flags that goes into a unit's key.
    fn identity(&self) -> String {
        let mut extra = Vec::new();
        for var in COMPILER_ENV {
            if let Some(v) = std::env::var_os(var) {
                extra.push((var.to_string(), v.to_string_lossy().into_owned()));
            }
        }
        format!("{:?} {:?} {:?} {:?} {:?} {} {:?}", self.program, self.args, self.env, self.resolved, self.stat, self.version, extra)
    }
}

/// Variables the compiler driver itself reads (where it finds headers and
/// its own parts); the rest of the environment cc hands on does not matter.
const COMPILER_ENV: &[&str] =
    &["CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "SOURCE_DATE_EPOCH", "SDKROOT"];

/// Where a program name leads on $PATH, as spawning it would find it.
fn resolve(program: &Path) -> Option<PathBuf> {
    let found = if program.components().count() > 1 {
        Some(program.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file()))
    };
    found.and_then(|p| p.canonicalize().ok())
}

fn stat(path: &Path) -> Option<(u64, u128)> {
    std::fs::metadata(path).ok().map(|m| (m.len(), mtime(&m)))
}

fn mtime(m: &std::fs::Metadata) -> u128 {
    m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
}

/// cache::file_stamp, or None for a file changed in the last seconds: file
/// times are coarse (a clock tick), so a second change within the same tick
/// could look like none; such a file is compared by content next time
/// (git's "racy" rule).
fn inode(m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    (now - m.ctime() > 2).then(|| crate::build::cache::file_stamp(m))
}

/// The key under which a language's compiler command is remembered: the
/// heap's settings for it (`settings`), this alloc8 (its own flags are in its
/// code), and every variable cc reads to choose a compiler and its flags.
pub fn settings_key(settings: &str) -> String {
    let exe = std::env::current_exe().ok();
    let exe = format!("{:?} {:?}", exe, exe.as_deref().and_then(stat));
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k == "PATH" || k.contains("CC") || k.contains("CXX") || k.contains("FLAGS") || COMPILER_ENV.contains(&k.as_str()))
        .collect();
    env.sort();
    digest(&[settings.as_bytes(), exe.as_bytes(), format!("{:?}", env).as_bytes()])
}

/// The command remembered under `key`, if its compiler is still the same binary.
pub fn remembered(dir: &Path, key: &str) -> Option<CompilerCommand> {
    let text = std::fs::read_to_string(dir.join("commands").join(key)).ok()?;
    let command: CompilerCommand = serde_json::from_str(&text).ok()?;
    command.current().then_some(command)
}

pub fn remember(dir: &Path, key: &str, command: &CompilerCommand) {
    let path = dir.join("commands").join(key);
    if let Ok(text) = serde_json::to_string(command) {
        // Best effort: without the record the next build asks cc again.
        let _ = crate::build::cache::write_if_changed(&path, &text);
    }
}

/// The key of compiling `source` with the compiler `identity` describes.
fn unit_key(identity: &str, source: &Path) -> Result<String, String> {
    let text = std::fs::read(source).map_err(|e| format!("cannot read {}: {}", source.display(), e))?;
    let path = source.to_string_lossy();
    Ok(digest(&[identity.as_bytes(), path.as_bytes(), &text]))
}

/// A header as recorded in an entry's `deps` file: `size inode digest path`
/// per line (`inode`: see [`inode`]).
struct Dep {
    size: u64,
    inode: String,
    digest: String,
    path: PathBuf,
}

fn read_deps(text: &str) -> Option<Vec<Dep>> {
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            Some(Dep {
                size: parts.next()?.parse().ok()?,
                inode: parts.next()?.to_string(),
                digest: parts.next()?.to_string(),
                path: PathBuf::from(parts.next()?),
            })
        })
        .collect()
}

/// Every recorded header still has the same content.
fn deps_unchanged(deps: &[Dep]) -> bool {
    deps.iter().all(|d| match std::fs::metadata(&d.path) {
        Ok(m) if m.len() == d.size && inode(&m).as_deref() == Some(d.inode.as_str()) => true,
        Ok(m) if m.len() == d.size => file_digest(&d.path).as_deref() == Some(d.digest.as_str()),
        _ => false,
    })
}

/// The files a `-MD` dependency file lists (make syntax: `obj: a.c b.h \`,
/// spaces in names escaped as `\ `).
pub fn parse_make_deps(text: &str) -> Vec<PathBuf> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let Some((_, deps)) = joined.split_once(": ") else { return Vec::new() };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

/// The object's file name: the source's stem, so the archive's members
/// (and the linker's messages) name the source they came from.
fn object_name(source: &Path) -> String {
    format!("{}.o", source.file_stem().map_or("unit".into(), |s| s.to_string_lossy()))
}

/// The cached object for `source` if its entry is still valid, and the
/// files it was compiled from.
fn lookup(entry: &Path, source: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let deps = read_deps(&std::fs::read_to_string(entry.join("deps")).ok()?)?;
    let object = entry.join(object_name(source));
    (object.is_file() && deps_unchanged(&deps)).then(|| (object, deps.into_iter().map(|d| d.path).collect()))
}

/// Runs the compiler for one unit and stores the entry; returns the object
/// and the files the compiler read.
fn compile_into(command: &CompilerCommand, source: &Path, entry: &Path, verbose: bool) -> Result<(PathBuf, Vec<PathBuf>), UnitError> {
    let parent = entry.parent().expect("entries live in a directory");
    let tmp = parent.join(format!(".{}.{}", entry.file_name().unwrap().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| UnitError::Tool(format!("cannot create {}: {}", tmp.display(), e)))?;
    let (obj, dep) = (tmp.join(object_name(source)), tmp.join("object.d"));
    let mut cmd = command.command();
    cmd.arg("-MD").arg("-MF").arg(&dep).arg("-o").arg(&obj).arg("-c").arg(source);
    let out = cmd.output().map_err(|e| UnitError::Tool(format!("cannot run {}: {}", command.program, e)))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(UnitError::Rejected { source: source.to_path_buf(), stderr });
    }
    if verbose && !stderr.is_empty() {
        eprint!("{}", stderr);
    }
    let read = parse_make_deps(&std::fs::read_to_string(&dep).unwrap_or_default());
    let mut deps = String::new();
    let mut headers = Vec::new();
    for h in read {
        let (Ok(m), Some(d)) = (std::fs::metadata(&h), file_digest(&h)) else {
            // A header the compiler read but we cannot: never trust this entry.
            return Ok((obj, headers));
        };
        let abs = h.canonicalize().unwrap_or(h);
        deps.push_str(&format!("{} {} {} {}\n", m.len(), inode(&m).as_deref().unwrap_or("-"), d, abs.display()));
        headers.push(abs);
    }
    let write =
        |p: PathBuf, text: &str| std::fs::write(&p, text).map_err(|e| UnitError::Tool(format!("cannot write {}: {}", p.display(), e)));
    write(tmp.join("deps"), &deps)?;
    let _ = std::fs::remove_file(&dep);
    let _ = std::fs::remove_dir_all(entry);
    match std::fs::rename(&tmp, entry) {
        Ok(()) => Ok((entry.join(object_name(source)), headers)),
        // Another alloc8 stored the same entry meanwhile: use ours as it is.
        Err(_) => Ok((obj, headers)),
    }
}

/// Objects for `sources`, each from the cache when still valid, else compiled
/// (misses in parallel, one per core). All failures are returned together.
pub fn compile(command: &CompilerCommand, sources: &[PathBuf], dir: &Path, verbose: bool) -> Result<Vec<Object>, Vec<UnitError>> {
    let identity = command.identity();
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    let mut misses = Vec::new();
    for source in sources {
        match unit_key(&identity, source) {
            Err(e) => errors.push(UnitError::Tool(e)),
            Ok(key) => {
                let entry = dir.join(&key);
                match lookup(&entry, source) {
                    Some((path, read)) => objects.push(Object { source: source.clone(), path, key, compiled: false, read }),
                    None => misses.push((source.clone(), key)),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(vec![UnitError::Tool(format!("cannot create {}: {}", dir.display(), e))]);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(misses.len().max(1));
    let queue = Mutex::new(misses.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some((source, key)) = queue.lock().unwrap().next() else { break };
                let r = compile_into(command, &source, &dir.join(&key), verbose);
                results.lock().unwrap().push((source, key, r));
            });
        }
    });
    for (source, key, r) in results.into_inner().unwrap() {
        match r {
            Ok((path, read)) => objects.push(Object { source, path, key, compiled: true, read }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The sources' order, whatever order the workers finished in.
    objects.sort_by_key(|o| sources.iter().position(|s| *s == o.source));
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_dependency_lists_are_split_like_make() {
        let d = "/tmp/x/object.o: /h/heap.c /usr/include/stdio.h \\\n /h/my\\ dir/a.h \\\n  /h/b.h\n";
        let got = parse_make_deps(d);
        let want: Vec<PathBuf> = ["/h/heap.c", "/usr/include/stdio.h", "/h/my dir/a.h", "/h/b.h"].iter().map(PathBuf::from).collect();
        assert_eq!(got, want);
        assert!(parse_make_deps("").is_empty());
    }

    #[test]
    fn digests_see_every_byte_and_the_boundaries() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_ne!(digest(&[b"abc"]), digest(&[b"abd"]));
        assert_eq!(digest(&[b"abc"]), digest(&[b"abc"]));
        assert_eq!(digest(&[b""]).len(), 32);
    }

    #[test]
    fn a_changed_header_invalidates_and_a_touched_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("a.h");
        std::fs::write(&h, "int x;\n").unwrap();
        let m = std::fs::metadata(&h).unwrap();
        let dep = Dep { size: m.len(), inode: inode(&m).unwrap_or("-".into()), digest: file_digest(&h).unwrap(), path: h.clone() };
        assert!(deps_unchanged(std::slice::from_ref(&dep)));
        // Same bytes, new time: read again, still the same.
        let f = std::fs::File::options().write(true).open(&h).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        assert!(deps_unchanged(std::slice::from_ref(&dep)));
        std::fs::write(&h, "int y;\n").unwrap();
        assert!(!deps_unchanged(std::slice::from_ref(&dep)));
        std::fs::remove_file(&h).unwrap();
        assert!(!deps_unchanged(&[dep]));
    }

    /// Issue 27, item 2: other bytes of the same size put back with the old
    /// modification time (`cp -p`, `touch -d`) are read, not trusted.
    #[test]
    fn a_header_restored_with_its_old_time_is_compared_by_content() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("a.h");
        std::fs::write(&h, "int x = 1;\n").unwrap();
        let m = std::fs::metadata(&h).unwrap();
        let dep = Dep { size: m.len(), inode: inode(&m).unwrap_or("-".into()), digest: file_digest(&h).unwrap(), path: h.clone() };
        std::fs::write(&h, "int x = 2;\n").unwrap();
        let f = std::fs::File::options().write(true).open(&h).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
        drop(f);
        assert_eq!((std::fs::metadata(&h).unwrap().len(), mtime(&std::fs::metadata(&h).unwrap())), (m.len(), mtime(&m)));
        assert!(!deps_unchanged(&[dep]));
    }
}
