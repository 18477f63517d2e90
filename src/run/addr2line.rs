//! File and line for code addresses, from the objects' debug information,
//! by binutils' `addr2line` (one run per object, after the program ended:
//! the crashing process only recorded object paths and file addresses).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one object's lookup may take (a huge object's debug
/// information takes seconds; nothing waits forever).
const LIMIT: Duration = Duration::from_secs(30);

/// A successful command's standard output (a few lines: it fits the pipe
/// while the command runs), or None if it failed or took longer than `limit`.
fn stdout_within(mut cmd: Command, limit: Duration) -> Option<String> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let status = super::wait::exited_within(&mut child, limit)?;
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    status.success().then_some(text)
}

/// The address `addr2line` takes for a byte `offset` into an object file:
/// the offset moved by the loadable segment that holds it (a crash report
/// knows the file offset the faulting instruction was mapped from).
pub fn file_address(object: &str, offset: u64) -> Option<u64> {
    use object::{Object, ObjectSegment};
    let data = std::fs::read(object).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let found = file.segments().find_map(|s| {
        let (start, size) = s.file_range();
        (offset >= start && offset < start + size).then(|| s.address() + (offset - start))
    });
    found
}

/// The function an address of an object lies in, from its symbol tables
/// (for objects without debug information): `name+0xoffset`, C++ and Rust
/// names demangled, Rust's hash left out.
pub fn symbol_at(object: &str, addr: u64) -> Option<String> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let data = std::fs::read(object).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let found = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .find(|s| addr >= s.address() && addr < s.address() + s.size())?;
    let raw = found.name().ok()?;
    let name = crate::check::demangle::demangle(raw).unwrap_or_else(|| raw.to_string());
    let name = match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => path.to_string(),
        _ => name,
    };
    Some(format!("{}+0x{:x}", name, addr - found.address()))
}

/// Whether binutils' `addr2line` can be run here.
pub fn installed() -> bool {
    Command::new("addr2line").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().map_or(false, |s| s.success())
}

/// `function at file:line` for each `(object, file address)`, in order;
/// None where the object has no debug information for it, or `addr2line`
/// is not installed.
pub fn locate(places: &[(&str, u64)]) -> Vec<Option<String>> {
    let mut by_object: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (object, _)) in places.iter().enumerate() {
        by_object.entry(object).or_default().push(i);
    }
    let mut found = vec![None; places.len()];
    for (object, indexes) in by_object {
        let addrs: Vec<String> = indexes.iter().map(|&i| format!("0x{:x}", places[i].1)).collect();
        let mut cmd = Command::new("addr2line");
        cmd.args(["-f", "-C", "-e", object]).args(&addrs);
        let out = match stdout_within(cmd, LIMIT) {
            Some(text) => text,
            None => continue,
        };
        // Two lines per address: the function, then file:line ("??:0" or
        // "??:?" when unknown; "file:N (discriminator M)" at times).
        let lines: Vec<&str> = out.lines().collect();
        for (k, &i) in indexes.iter().enumerate() {
            if let (Some(function), Some(source)) = (lines.get(2 * k), lines.get(2 * k + 1)) {
                found[i] = source_line(function, source);
            }
        }
    }
    found
}

/// "main at prog.c:12" from addr2line's two lines, if the line is known.
fn source_line(function: &str, source: &str) -> Option<String> {
    let source = source.split(" (discriminator").next().unwrap_or(source).trim();
    let (file, line) = source.rsplit_once(':')?;
    if file.starts_with("??") || line.parse::<u32>().map_or(true, |n| n == 0) {
        return None;
    }
    Some(if function.starts_with("??") { source.to_string() } else { format!("{} at {}", function.trim(), source) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr2lines_answers_are_read_or_left_out() {
        assert_eq!(source_line("main", "/tmp/p.c:12"), Some("main at /tmp/p.c:12".into()));
        assert_eq!(source_line("f", "/tmp/p.c:7 (discriminator 2)"), Some("f at /tmp/p.c:7".into()));
        assert_eq!(source_line("??", "/tmp/p.c:7"), Some("/tmp/p.c:7".into()));
        assert_eq!(source_line("main", "??:0"), None);
        assert_eq!(source_line("main", "??:?"), None);
        assert_eq!(source_line("main", "/tmp/p.c:?"), None);
    }

    #[test]
    fn a_command_that_takes_too_long_is_ended() {
        let mut slow = Command::new("sleep");
        slow.arg("10");
        let started = std::time::Instant::now();
        assert_eq!(stdout_within(slow, Duration::from_millis(200)), None);
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut quick = Command::new("echo");
        quick.arg("hi");
        assert_eq!(stdout_within(quick, LIMIT).as_deref(), Some("hi\n"));
        assert_eq!(stdout_within(Command::new("false"), LIMIT), None);
    }

    #[test]
    fn a_file_offset_becomes_the_address_of_the_segment_that_maps_it() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        use object::{Object, ObjectSegment};
        let file = object::File::parse(&*data).unwrap();
        let text = file.segments().find(|s| s.file_range().1 > 0x100 && s.address() != s.file_range().0).or_else(|| file.segments().nth(1));
        let s = text.unwrap();
        let (start, _) = s.file_range();
        assert_eq!(file_address(exe.to_str().unwrap(), start + 0x10), Some(s.address() + 0x10));
        assert_eq!(file_address(exe.to_str().unwrap(), u64::MAX / 2), None);
        assert_eq!(file_address("/nonexistent/object", 0), None);
    }

    #[test]
    fn a_function_is_named_from_the_symbol_table() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("named.c");
        std::fs::write(&src, "__attribute__((noinline)) int twice(int x) { return x * 2; }\nint main(void) { return twice(0); }\n")
            .unwrap();
        let exe = dir.path().join("named");
        assert!(Command::new("gcc").args(["-O1", "-o"]).arg(&exe).arg(&src).status().unwrap().success());
        let nm = Command::new("nm").arg(&exe).output().unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout);
        let twice = nm.lines().find(|l| l.ends_with(" T twice")).unwrap();
        let addr = u64::from_str_radix(twice.split(' ').next().unwrap(), 16).unwrap();
        assert_eq!(symbol_at(exe.to_str().unwrap(), addr + 2).as_deref(), Some("twice+0x2"));
        assert_eq!(symbol_at(exe.to_str().unwrap(), 0), None);
    }

    #[test]
    fn a_program_built_with_debug_information_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("where.c");
        std::fs::write(&src, "int twice(int x) {\n    return x * 2;\n}\nint main(void) { return twice(0); }\n").unwrap();
        let exe = dir.path().join("where");
        let built = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(&exe).arg(&src).status().unwrap();
        assert!(built.success());
        // twice's address from the symbol table, as the checking layer records it.
        let nm = Command::new("nm").arg(&exe).output().unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout);
        let twice = nm.lines().find(|l| l.ends_with(" T twice")).unwrap();
        let addr = u64::from_str_radix(twice.split(' ').next().unwrap(), 16).unwrap();
        let exe = exe.to_str().unwrap();
        let found = locate(&[(exe, addr + 4), ("/nonexistent/object", 0x1000), (exe, 0)]);
        let first = found[0].as_deref().unwrap();
        assert!(first.starts_with("twice at ") && first.contains("where.c:"), "{}", first);
        assert_eq!(found[1], None);
        assert_eq!(found[2], None);
    }
}
