//! Finding the program to launch, as execvp would, so a missing or
//! unrunnable program is a plain error (exit 127/126, like env and shells)
//! and so run can later say why a program ignored the preload.

use super::Exit;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `name` with a slash is a path; otherwise the first executable match in PATH.
pub fn resolve(name: &OsStr) -> Result<PathBuf, Exit> {
    let shown = Path::new(name).display().to_string();
    if name.is_empty() {
        return Err(Exit::new(127, "no program given after `--`".into()));
    }
    if name.to_string_lossy().contains('/') {
        let path = PathBuf::from(name);
        return match std::fs::metadata(&path) {
            Err(e) => Err(Exit::new(127, format!("cannot run {}: {}", shown, e))),
            Ok(m) if m.is_dir() => Err(Exit::new(126, format!("cannot run {}: it is a directory", shown))),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(Exit::new(126, format!("cannot run {}: it is not executable (chmod +x?)", shown)))
            }
            Ok(_) => Ok(path),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut not_executable = None;
    for dir in std::env::split_paths(&search) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            not_executable.get_or_insert(candidate);
        }
    }
    match not_executable {
        Some(path) => Err(Exit::new(126, format!("cannot run {}: {} is not executable", shown, path.display()))),
        None => {
            Err(Exit::new(127, format!("program `{}` not found: no such file in any PATH directory ({})", shown, search.to_string_lossy())))
        }
    }
}

/// Why exec failed for a program `resolve` found: 126 (found but cannot be
/// executed, as shells say) for a format the kernel does not run or a `#!`
/// interpreter or dynamic linker that is missing; 127 only if the file itself
/// went away meanwhile.
pub fn exec_error(exe: &Path, shown: &str, e: &std::io::Error) -> Exit {
    let cannot = |why: String| Exit::new(126, format!("cannot run {}: {}", shown, why));
    match e.raw_os_error() {
        Some(libc::ENOEXEC) => cannot("not a program this system can execute (exec format error; a script needs a #! line)".into()),
        Some(libc::ENOENT) if exe.exists() => match interpreter(exe) {
            Some(interp) => cannot(format!("its interpreter {} does not exist", interp)),
            None => cannot(format!("{} (its interpreter or a file it needs is missing)", e)),
        },
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EISDIR) | Some(libc::ETXTBSY) => cannot(e.to_string()),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Exit::new(127, format!("cannot run {}: {}", shown, e)),
        _ => cannot(e.to_string()),
    }
}

/// The program's `#!` interpreter (with the line's argument), or its ELF dynamic linker.
fn interpreter(exe: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(exe).ok()?.take(4096).read_to_end(&mut head).ok()?;
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
        let line = String::from_utf8_lossy(line).trim().to_string();
        let program = line.split_whitespace().next().unwrap_or("").to_string();
        return Some(format!("{} (the #! line)", program));
    }
    let data = std::fs::read(exe).ok()?;
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*data).ok()?;
    let interp = file.section_by_name(".interp")?.data().ok()?;
    let interp = String::from_utf8_lossy(interp).trim_end_matches('\0').to_string();
    Some(format!("{} (its dynamic linker)", interp))
}

/// Why the dynamic linker would ignore LD_PRELOAD for this executable, if
/// its file says so: no dynamic linker at all, or a secure-execution program.
pub fn ignores_preload(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o6000 != 0 {
        return Some("it is setuid/setgid, and the dynamic linker ignores LD_PRELOAD for such programs");
    }
    let data = std::fs::read(path).ok()?;
    if !data.starts_with(b"\x7fELF") {
        return None;
    }
    let file = object::read::File::parse(&*data).ok()?;
    use object::Object;
    if file.section_by_name(".interp").is_none() {
        return Some("it is statically linked: no dynamic linker runs to read LD_PRELOAD");
    }
    None
}
