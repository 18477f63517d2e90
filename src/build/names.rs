//! What `build` may call the things it makes: the prefix of a prefixed
//! library's functions, the library's file name and its header's, and the
//! directory they go to. Each is refused before cargo runs when it could not
//! work: a name the C library owns, an identifier C reserves for itself, a
//! header that would hide a system header under the documented `-I`, a file
//! name a linker or a shell trips over.

use crate::contract::{self, Mode, Platform};
use anyhow::{bail, Result};
use std::path::Path;

/// Where the library's name came from, for the advice on changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StemSource {
    /// `--name`.
    Name,
    /// `--prefix`, in prefixed mode without `--name`.
    Prefix,
    /// The heap's file, directory or package name.
    Heap,
}

impl StemSource {
    fn describe(self, stem: &str) -> String {
        match self {
            StemSource::Name => format!("--name {:?}", stem),
            StemSource::Prefix => format!("the library name {:?} (from --prefix)", stem),
            StemSource::Heap => format!("the library name {:?} (from the heap's name)", stem),
        }
    }
}

/// The prefix of `<prefix>_malloc` & co. (prefixed mode).
pub fn check_prefix(prefix: &str) -> Result<()> {
    if !contract::valid_prefix(prefix) {
        bail!(
            "--prefix {:?} cannot start C identifiers; use letters, digits and _ (not starting with a digit), e.g. `--prefix myheap`",
            prefix
        );
    }
    if prefix.starts_with('_') {
        bail!(
            "--prefix {:?}: identifiers that start with _ are reserved for the C implementation (glibc's own allocator \
             is __libc_malloc & co.); start it with a letter, e.g. `--prefix myheap`",
            prefix
        );
    }
    let owned: Vec<String> = contract::exports_for(Platform::Linux, Mode::Prefixed, prefix)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| contract::EXPORTS.iter().any(|e| e.name == name))
        .collect();
    if !owned.is_empty() {
        bail!(
            "--prefix {:?} would export {}, the C library's own: programs would call this heap where they mean the \
             system's; choose another prefix",
            prefix,
            owned.join(", ")
        );
    }
    Ok(())
}

/// Libraries of the C and C++ runtimes: `-L out -l<name>` would find ours.
const RUNTIME_LIBRARIES: &str = "c m dl pthread rt util resolv anl mvec crypt nsl stdc++ gcc gcc_s atomic \
                                 msvcrt ucrtbase kernel32 kernelbase ntdll";

/// Headers of the C library that a program may include by name, without
/// `.h`; installed headers are checked too (`header_on_system`).
const SYSTEM_HEADERS: &[&str] = &[
    // C17 and C23.
    "assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign stdarg \
     stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar wchar wctype",
    // POSIX.
    "aio cpio dirent dlfcn fcntl fmtmsg fnmatch ftw glob grp iconv langinfo libgen monetary mqueue ndbm netdb \
     nl_types poll pthread pwd regex sched search semaphore spawn strings syslog tar termios ulimit unistd utime utmpx wordexp",
    // glibc.
    "malloc alloca memory features argp argz envz err error execinfo getopt link elf endian byteswap obstack printf \
     shadow sysexits mcheck ifaddrs paths mntent pty utmp fstab values",
    // mingw-w64's CRT and Windows.
    "windows io process direct conio crtdbg tchar intrin",
];

fn listed(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|n| n.eq_ignore_ascii_case(name))
}

/// The library's name: `lib<stem>.so` (`<stem>.dll`), and in prefixed mode
/// the header `<stem>.h` a program includes with `-I out`.
pub fn check_stem(stem: &str, source: StemSource, mode: Mode, platform: Platform) -> Result<()> {
    let what = source.describe(stem);
    let fix = match source {
        StemSource::Name => "choose another --name".to_string(),
        _ => "name the library with --name".to_string(),
    };
    if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c)) {
        bail!("{} cannot name a library file: use letters, digits and _ . + - (the library becomes lib<NAME>.so); {}", what, fix);
    }
    if listed(RUNTIME_LIBRARIES, stem) {
        let file = match platform {
            Platform::Windows => format!("{}.dll", stem),
            Platform::Macos => format!("lib{}.dylib", stem),
            Platform::Linux => format!("lib{}.so", stem),
        };
        bail!("{} would write {}, the name of a library of the C runtime (linking with -l{} would find ours); {}", what, file, stem, fix);
    }
    if mode == Mode::Prefixed {
        let header = format!("{}.h", stem);
        let installed = header_on_system(&header, platform);
        if SYSTEM_HEADERS.iter().any(|list| listed(list, stem)) || installed.is_some() {
            bail!(
                "{} would write {}, which hides the system's <{}>{} in every file compiled with `-I` on the output \
                 directory; {} (the header takes its name)",
                what,
                header,
                header,
                installed.map(|p| format!(" ({})", p)).unwrap_or_default(),
                fix
            );
        }
    }
    Ok(())
}

/// An installed header of that name in the target's system include directory.
fn header_on_system(header: &str, platform: Platform) -> Option<String> {
    let dirs: &[&str] = match platform {
        Platform::Linux => &["/usr/include", "/usr/local/include"],
        Platform::Windows => &["/usr/x86_64-w64-mingw32/include"],
        Platform::Macos => &[],
    };
    dirs.iter().map(|d| Path::new(d).join(header)).find(|p| p.is_file()).map(|p| p.display().to_string())
}

/// `--out`: a directory, or a path where one can be created.
pub fn check_out_dir(out: &Path) -> Result<()> {
    // The first part of the path that exists must be a directory.
    for ancestor in out.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if ancestor == out => bail!("--out {} is a file, not a directory; give the directory to write to", out.display()),
            Ok(_) => bail!("--out {}: {} is a file, not a directory", out.display(), ancestor.display()),
            Err(_) => continue,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_the_c_library_owns_or_reserves_are_refused() {
        assert!(check_prefix("foo").is_ok() && check_prefix("My_Heap9").is_ok());
        let err = check_prefix("__libc").unwrap_err().to_string();
        assert!(err.contains("reserved"), "{}", err);
        assert!(check_prefix("_x").unwrap_err().to_string().contains("reserved"));
        let err = check_prefix("posix").unwrap_err().to_string();
        assert!(err.contains("posix_memalign") && err.contains("the C library's own"), "{}", err);
        assert!(check_prefix("9lives").unwrap_err().to_string().contains("cannot start C identifiers"));
    }

    #[test]
    fn library_names_are_plain_file_names_the_runtime_does_not_own() {
        let ok = |s| check_stem(s, StemSource::Name, Mode::Interpose, Platform::Linux);
        assert!(ok("my_heap-2.0+x").is_ok());
        for bad in ["a b", "", "a/b", "x;rm", "héap", "a\nb"] {
            assert!(ok(bad).unwrap_err().to_string().contains("letters, digits and _ . + -"), "{:?}", bad);
        }
        let err = ok("c").unwrap_err().to_string();
        assert!(err.contains("libc.so") && err.contains("C runtime"), "{}", err);
        let err = check_stem("msvcrt", StemSource::Name, Mode::Interpose, Platform::Windows).unwrap_err().to_string();
        assert!(err.contains("msvcrt.dll"), "{}", err);
    }

    #[test]
    fn a_prefixed_library_s_header_may_not_hide_a_system_header() {
        let err = check_stem("malloc", StemSource::Prefix, Mode::Prefixed, Platform::Linux).unwrap_err().to_string();
        assert!(err.contains("malloc.h") && err.contains("hides the system's <malloc.h>") && err.contains("--name"), "{}", err);
        assert!(check_stem("stdlib", StemSource::Name, Mode::Prefixed, Platform::Windows).is_err());
        // Interpose mode writes no header.
        assert!(check_stem("malloc", StemSource::Name, Mode::Interpose, Platform::Linux).is_ok());
        assert!(check_stem("myheap", StemSource::Prefix, Mode::Prefixed, Platform::Linux).is_ok());
    }

    #[test]
    fn out_must_be_a_directory_or_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check_out_dir(dir.path()).is_ok());
        assert!(check_out_dir(&dir.path().join("new/deeper")).is_ok());
        assert!(check_out_dir(&file).unwrap_err().to_string().contains("is a file, not a directory"));
        let err = check_out_dir(&file.join("sub")).unwrap_err().to_string();
        assert!(err.contains(&format!("{} is a file", file.display())), "{}", err);
    }
}
