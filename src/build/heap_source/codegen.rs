//! How a heap's code is compiled into a Linux shim, so that it runs at the
//! speed of its own build:
//!
//! - C and C++ (compiled by alloc8 for xxmalloc heaps, or by a dependency's
//!   build script through the `cc` crate, e.g. libmimalloc-sys) get hidden
//!   visibility: nothing outside the library can preempt the heap's internal
//!   functions, so the compiler may inline them into each other (under
//!   `-fPIC` it must not inline a default-visibility function). An
//!   interposer's thread-locals are initial-exec (one `%fs`-relative load,
//!   no `__tls_get_addr`, which may call malloc): a preloaded library's TLS
//!   is allocated with the program's at start-up. A prefixed library may be
//!   `dlopen`ed late, when no static TLS space may be left, so its C keeps
//!   the compiler's dlopen-safe default model.
//! - The shim crate's calls into such code are direct `call`s rather than
//!   calls through the GOT: rustc marks external functions `nonlazybind`
//!   (GOT calls the linker cannot relax) unless the RELRO level is partial;
//!   the link then adds `-z now` itself, which makes RELRO full again.

use super::{HeapKind, HeapSource};
use crate::contract::Mode;

/// Compiler flags for C/C++ in a shim of `mode`. They go before the heap's
/// own flags, so a heap can still override them (`-ftls-model=...`).
pub fn c_flags(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Interpose => &["-fvisibility=hidden", "-ftls-model=initial-exec"],
        Mode::Prefixed => &["-fvisibility=hidden"],
    }
}

/// The variables through which the `cc` crate picks up [`c_flags`] when a
/// build script compiles for `target`: `CFLAGS_<target>` and
/// `CXXFLAGS_<target>` (underscored). cc 1.1 and later append them to plain
/// `CFLAGS`, which stays the user's; a value the user already gave to either
/// name is kept after ours (the later flag wins). With no `--target` they
/// reach build scripts compiling for the host too (the same triple).
/// `current` looks up the environment.
pub fn cc_env(mode: Mode, target: &str, current: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let ours = c_flags(mode).join(" ");
    ["CFLAGS", "CXXFLAGS"]
        .iter()
        .map(|var| {
            let name = format!("{}_{}", var, target.replace('-', "_"));
            let value = match current(&name) {
                Some(theirs) if !theirs.trim().is_empty() => format!("{} {}", ours, theirs),
                _ => ours.clone(),
            };
            (name, value)
        })
        .collect()
}

/// The triple cargo builds for without `--target` (a Linux host).
pub fn host_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// rustc arguments for the shim crate so that its calls into the heap's
/// code are direct. Not for a one-file Rust heap without dependencies: all
/// its code is inlined into the shim, and its only outside calls go to the
/// system's libraries, where a call through the PLT would be one jump
/// longer than rustc's call through the GOT.
pub fn direct_call_args(heap: &HeapSource) -> Vec<String> {
    let self_contained = matches!(&heap.kind, HeapKind::File { dependencies, .. } if dependencies.trim().is_empty());
    if self_contained {
        return Vec::new();
    }
    ["-C", "relro-level=partial", "-C", "link-arg=-Wl,-z,now"].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn interposers_get_initial_exec_tls_and_prefixed_libraries_stay_dlopen_safe() {
        assert!(c_flags(Mode::Interpose).contains(&"-ftls-model=initial-exec"));
        assert!(c_flags(Mode::Interpose).contains(&"-fvisibility=hidden"));
        assert!(!c_flags(Mode::Prefixed).iter().any(|f| f.starts_with("-ftls-model")));
        assert!(c_flags(Mode::Prefixed).contains(&"-fvisibility=hidden"));
    }

    #[test]
    fn cc_variables_keep_the_users_own_flags_last() {
        let none = cc_env(Mode::Interpose, "x86_64-unknown-linux-gnu", |_| None);
        assert_eq!(
            none,
            vec![
                ("CFLAGS_x86_64_unknown_linux_gnu".to_string(), "-fvisibility=hidden -ftls-model=initial-exec".to_string()),
                ("CXXFLAGS_x86_64_unknown_linux_gnu".to_string(), "-fvisibility=hidden -ftls-model=initial-exec".to_string()),
            ]
        );
        let theirs = cc_env(Mode::Prefixed, "aarch64-unknown-linux-gnu", |name| {
            (name == "CFLAGS_aarch64_unknown_linux_gnu").then(|| "-O1 -g".to_string())
        });
        assert_eq!(theirs[0], ("CFLAGS_aarch64_unknown_linux_gnu".to_string(), "-fvisibility=hidden -O1 -g".to_string()));
        assert_eq!(theirs[1].1, "-fvisibility=hidden");
    }

    #[test]
    fn only_self_contained_rust_files_keep_rustcs_calls_through_the_got() {
        let file =
            |deps: &str| HeapSource { name: "h".into(), kind: HeapKind::File { path: PathBuf::from("h.rs"), dependencies: deps.into() } };
        assert!(direct_call_args(&file("")).is_empty());
        assert!(direct_call_args(&file("dlmalloc = \"0.2\"\n")).contains(&"relro-level=partial".to_string()));
        let xx = HeapSource { name: "h".into(), kind: HeapKind::Xx(super::super::xx::XxInput::Prebuilt(PathBuf::from("h.a"))) };
        assert_eq!(direct_call_args(&xx), ["-C", "relro-level=partial", "-C", "link-arg=-Wl,-z,now"]);
    }
}
