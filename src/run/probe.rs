//! Why a library did not load into a program, asked of the dynamic linker
//! itself: its trace mode (what `ldd -r` uses) loads the program's libraries
//! with ours preloaded and binds every symbol, printing what fails, and
//! never runs the program.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// ld.so's own lines about `lib` (undefined symbol, missing library or
/// version) when loading `exe` with it preloaded; None if it reports none,
/// or if `exe` is not a program glibc's dynamic linker starts.
pub fn load_errors(exe: &Path, lib: &Path) -> Option<Vec<String>> {
    if !glibc_dynamic(exe) {
        return None;
    }
    let mut child = Command::new(exe)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .env("LD_BIND_NOW", "1")
        .env("LD_WARN", "1")
        .env("LD_PRELOAD", lib)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Nothing hangs: the dynamic linker answers at once, or not at all.
    super::wait::exited_within(&mut child, Duration::from_secs(10))?;
    let mut text = String::new();
    for pipe in [child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>), child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>)]
        .into_iter()
        .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut text);
    }
    let ours = lib.to_string_lossy();
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(ours.as_ref()) || l.contains("cannot be preloaded"))
        .filter(|l| l.contains("undefined symbol") || l.contains("not found") || l.contains("cannot"))
        .map(str::to_string)
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// An ELF program whose interpreter is glibc's ld.so (trace mode is glibc's;
/// another loader, or a static program, would just run the program).
fn glibc_dynamic(exe: &Path) -> bool {
    use object::{Object, ObjectSection};
    let Ok(data) = std::fs::read(exe) else { return false };
    let Ok(file) = object::File::parse(&*data) else { return false };
    let interp = file.section_by_name(".interp").and_then(|s| s.data().ok().map(|d| String::from_utf8_lossy(d).into_owned()));
    interp.map_or(false, |i| i.contains("/ld-linux") || i.contains("/ld64.so") || i.contains("/ld.so"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dynamic_linker_names_the_undefined_symbol_without_running_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("u.c");
        std::fs::write(&src, "extern void nowhere_defined(void);\nvoid call_it(void) { nowhere_defined(); }\n").unwrap();
        let so = dir.path().join("libu.so");
        let out = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&so).arg(&src).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // `sh -c 'touch x'` would create x if it ran; trace mode never runs it.
        let sh = Path::new("/bin/sh");
        let lines = load_errors(sh, &so).expect("ld.so reports the undefined symbol");
        assert!(lines.iter().any(|l| l.contains("undefined symbol: nowhere_defined")), "{:?}", lines);
        // A library that loads: nothing to report.
        std::fs::write(&src, "void call_it(void) {}\n").unwrap();
        let out = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&so).arg(&src).output().unwrap();
        assert!(out.status.success());
        assert_eq!(load_errors(sh, &so), None);
        assert!(!glibc_dynamic(&src), "a C source is no program");
    }
}
