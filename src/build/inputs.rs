//! A build never writes over its own inputs. `--out` defaults to `.`, where
//! the heap usually is: a prefixed build of `libfoo.a` with `--prefix foo`
//! would replace the user's archive with its own, a build of `foo.c` that
//! includes `foo.h` would replace the header. Every file the build would
//! write is compared with every file it reads (as the same file: a link or
//! another spelling of the path is caught too), and the build is refused
//! before anything is written.

use super::freshness;
use super::heap_source::xx::{XxInput, MANIFEST};
use super::heap_source::xx_cache::parse_make_deps;
use super::heap_source::{HeapKind, HeapSource};
use crate::contract::{Mode, Platform};
use anyhow::{bail, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file the build reads, and what it is to the build (for the error).
pub type Input = (PathBuf, &'static str);

/// The files of the heap known before anything is compiled. `given` is the
/// path the user gave (a directory with an alloc8.toml carries it).
pub fn known(heap: &HeapSource, given: &Path) -> Vec<Input> {
    match &heap.kind {
        HeapKind::File { path, .. } => vec![(path.clone(), "the heap")],
        // Its manifest and sources; what else cargo read is known once it
        // has built (`read_by_cargo`).
        HeapKind::Crate { dir, .. } => freshness::root_files(dir)
            .into_iter()
            .chain(freshness::files_under(&dir.join("src")))
            .map(|f| (f, "a file of the heap crate"))
            .collect(),
        HeapKind::Xx(XxInput::Prebuilt(path)) => vec![(path.clone(), "the heap")],
        HeapKind::Xx(XxInput::Sources(sources)) => {
            let mut inputs: Vec<Input> = sources.files.iter().map(|f| (f.clone(), "a source of the heap")).collect();
            if given.is_dir() {
                inputs.push((given.join(MANIFEST), "the heap's alloc8.toml"));
            }
            inputs
        }
    }
}

/// Every file cargo compiled the library `lib` from, by its dep-info file
/// beside it (`lib<crate>.d`: the sources of every local package, and what
/// build scripts said they read): a heap crate's inputs, exactly.
pub fn read_by_cargo(lib: &Path) -> Vec<Input> {
    let text = std::fs::read_to_string(lib.with_extension("d")).unwrap_or_default();
    parse_make_deps(&text).into_iter().map(|p| (p, "a file the library is compiled from")).collect()
}

/// The names of the files a build writes to `--out`.
pub fn output_names(platform: Platform, mode: Mode, stem: &str) -> Vec<String> {
    let mut names = match platform {
        Platform::Linux => vec![format!("lib{}.so", stem)],
        Platform::Macos => vec![format!("lib{}.dylib", stem)],
        Platform::Windows => vec![format!("{}.dll", stem), format!("lib{}.dll.a", stem)],
    };
    if mode == Mode::Prefixed {
        if platform != Platform::Windows {
            names.push(format!("lib{}.a", stem));
        }
        names.push(format!("{}.h", stem));
    }
    names
}

/// Refuses the build if one of the files it would write in `out` is one of
/// `inputs`.
pub fn refuse_overwrite(out: &Path, outputs: &[String], inputs: &[Input]) -> Result<()> {
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let existing: Vec<(PathBuf, (u64, u64))> = outputs.iter().map(|n| out.join(n)).filter_map(|p| identity(&p).map(|id| (p, id))).collect();
    if existing.is_empty() {
        return Ok(());
    }
    for (input, what) in inputs {
        let Some(id) = identity(input) else { continue };
        if let Some((output, _)) = existing.iter().find(|(_, o)| *o == id) {
            let same = if output.canonicalize().ok().as_deref() == Some(input.as_path()) || output == input {
                String::new()
            } else {
                format!(" ({})", input.display())
            };
            bail!(
                "this build would write {}, which is {}{}: nothing was written; write the library elsewhere with \
                 `--out DIR` (or name it with `--name`)",
                output.display(),
                what,
                same
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_an_input_is_refused_by_identity() {
        let d = tempfile::tempdir().unwrap();
        let archive = d.path().join("libfoo.a");
        std::fs::write(&archive, "!<arch>\n").unwrap();
        let names = output_names(Platform::Linux, Mode::Prefixed, "foo");
        assert_eq!(names, ["libfoo.so", "libfoo.a", "foo.h"]);
        let err = refuse_overwrite(d.path(), &names, &[(archive.canonicalize().unwrap(), "the heap")]).unwrap_err().to_string();
        assert!(err.contains("libfoo.a, which is the heap") && err.contains("--out"), "{}", err);
        // Another spelling of the directory, and a hard link, are the same file.
        let other = d.path().join("sub/..");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert!(refuse_overwrite(&other, &names, &[(archive.clone(), "the heap")]).is_err());
        let linked = d.path().join("elsewhere.a");
        std::fs::hard_link(&archive, &linked).unwrap();
        let err = refuse_overwrite(d.path(), &names, &[(linked.clone(), "the heap")]).unwrap_err().to_string();
        assert!(err.contains(&format!("({})", linked.display())), "{}", err);
        // What cargo says it read counts as much.
        std::fs::write(d.path().join("liballoc8_shim_x.d"), format!("/t/liballoc8_shim_x.so: /h/src/lib.rs {}\n", archive.display()))
            .unwrap();
        let read = read_by_cargo(&d.path().join("liballoc8_shim_x.so"));
        assert_eq!(read.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), [PathBuf::from("/h/src/lib.rs"), archive.clone()]);
        assert!(refuse_overwrite(d.path(), &names, &read).unwrap_err().to_string().contains("a file the library is compiled from"));
        // Interpose mode writes no archive: nothing to refuse.
        assert!(refuse_overwrite(d.path(), &output_names(Platform::Linux, Mode::Interpose, "foo"), &[(archive, "the heap")]).is_ok());
    }
}
