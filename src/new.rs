//! `alloc8 new NAME [--crate | --c]`: writes a heap skeleton that builds at
//! once and passes `alloc8 test`: a size-class heap with a lock, commented as
//! a starting point. A single Rust file by default; a heap crate with
//! `--crate` (with a copy of the alloc8 crate beside it, so it builds without
//! a checkout or the network); a C file in the xxmalloc convention with `--c`.

use crate::build::staging::Staging;
use crate::build::templates;
use crate::output::outln;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Clone)]
pub struct NewArgs {
    /// The heap's name: the file (NAME.rs, NAME.c) or crate directory (NAME/).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A heap crate (NAME/Cargo.toml, NAME/src/lib.rs) instead of one file.
    #[arg(long = "crate", conflicts_with = "c")]
    pub krate: bool,
    /// A heap in C, in the xxmalloc convention.
    #[arg(long)]
    pub c: bool,
    /// Where to write it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

pub fn main(args: NewArgs) -> Result<ExitCode> {
    let skeleton = match (args.krate, args.c) {
        (true, _) => Skeleton::RustCrate,
        (_, true) => Skeleton::C,
        _ => Skeleton::RustFile,
    };
    let written = new(&NewOptions { name: args.name, skeleton, dir: args.dir })?;
    let heap = written.heap.display();
    outln!(
        "wrote {} ({} files)\nnext: alloc8 build --heap {heap}    # or: alloc8 run --heap {heap} -- PROG ARGS...",
        heap,
        written.files.len()
    )
    .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skeleton {
    RustFile,
    RustCrate,
    C,
}

pub struct NewOptions {
    pub name: String,
    pub skeleton: Skeleton,
    /// Where the file or crate directory goes.
    pub dir: PathBuf,
}

/// What was written, and the path to give `--heap`.
#[derive(Debug)]
pub struct Written {
    pub heap: PathBuf,
    pub files: Vec<PathBuf>,
}

/// The Rust skeleton; `@NAME@`, `@TYPE@` and `@FILE@` are filled in.
const HEAP_RS: &str = include_str!("../templates/new/heap.rs");
/// The C skeleton is the shipped C heap, which the test suite runs real programs under.
const HEAP_C: &str = include_str!("../shims/xx_bump.c");

pub fn new(opts: &NewOptions) -> Result<Written> {
    check_name(&opts.name, opts.skeleton)?;
    let type_name = type_name(&opts.name);
    match opts.skeleton {
        Skeleton::RustFile => {
            let name = format!("{}.rs", opts.name);
            let text = fill(HEAP_RS, &opts.name, &type_name, &opts.dir.join(&name).display().to_string());
            write_new(&opts.dir, &name, &[(PathBuf::new(), text)])
        }
        Skeleton::C => {
            let name = format!("{}.c", opts.name);
            let text = HEAP_C.replace("shims/xx_bump.c", &opts.dir.join(&name).display().to_string());
            write_new(&opts.dir, &name, &[(PathBuf::new(), text)])
        }
        Skeleton::RustCrate => {
            let root = opts.dir.join(&opts.name);
            let mut files = vec![
                (PathBuf::from("Cargo.toml"), cargo_toml(&opts.name)),
                (PathBuf::from("src/lib.rs"), fill(HEAP_RS, &opts.name, &type_name, &format!("{}/", root.display()))),
            ];
            // The alloc8 crate as this alloc8 embeds it: the heap builds
            // offline, and always against the version that builds its shims.
            for (rel, text) in templates::ALLOC8_CRATE {
                files.push((Path::new("alloc8").join(rel), text.to_string()));
            }
            write_new(&opts.dir, &opts.name, &files)
        }
    }
}

/// A crate name and a C file name both: letters, digits, `_`, `-`, starting
/// with a letter; a crate's name may not be one cargo or rustc refuse, nor
/// that of the crate it depends on.
fn check_name(name: &str, skeleton: Skeleton) -> Result<()> {
    let ok = name.chars().next().map_or(false, |c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        bail!("`{}` cannot name a heap: use letters, digits, `_` and `-`, starting with a letter (e.g. `myheap`)", name);
    }
    if skeleton != Skeleton::RustCrate {
        return Ok(());
    }
    // Cargo compares crate names with `-` as `_`.
    let crate_name = name.replace('-', "_");
    if crate_name == "alloc8" {
        bail!(
            "`{}` cannot name a heap crate: it depends on the crate `alloc8`, and two packages of one name cannot build \
             together; choose another name (e.g. `{}_heap`)",
            name,
            name
        );
    }
    if RESERVED_CRATE_NAMES.split_whitespace().any(|n| n == crate_name) {
        bail!(
            "`{}` cannot name a heap crate: cargo refuses it (a Rust keyword or a crate of the standard library); \
             choose another name (e.g. `{}_heap`)",
            name,
            name
        );
    }
    Ok(())
}

/// Names cargo will not give a package: Rust's keywords and the standard
/// library's crates.
const RESERVED_CRATE_NAMES: &str = "abstract as async await become box break const continue crate do dyn else enum extern \
     false final fn for if impl in let loop macro match mod move mut override priv pub ref return self static struct \
     super trait true try type typeof unsafe unsized use virtual where while yield core std alloc proc_macro test";

/// `my-heap` -> `MyHeap`; `bump` -> `BumpHeap`.
fn type_name(name: &str) -> String {
    let mut out: String = name
        .split(|c| c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(cs).collect::<String>()
        })
        .collect();
    if !out.to_ascii_lowercase().ends_with("heap") {
        out.push_str("Heap");
    }
    out
}

fn fill(template: &str, name: &str, type_name: &str, file: &str) -> String {
    template.replace("@NAME@", name).replace("@TYPE@", type_name).replace("@FILE@", file)
}

fn cargo_toml(name: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n\
         # The alloc8 crate, written here by `alloc8 new` (no network or checkout needed).\n\
         alloc8 = {{ path = \"alloc8\" }}\n\n\
         # A heap crate of its own, not a member of an enclosing workspace.\n\
         [workspace]\n"
    )
}

/// Writes `dir/entry` (one file, or a directory of `files`) as `build`
/// writes its outputs: staged under a hidden name and renamed into place, so
/// a failure (a full disk) leaves nothing behind and a retry starts clean.
/// Never over anything that exists.
fn write_new(dir: &Path, entry: &str, files: &[(PathBuf, String)]) -> Result<Written> {
    let dest = dir.join(entry);
    if dest.symlink_metadata().is_ok() {
        bail!("{} already exists: choose another name, or remove it first", dest.display());
    }
    if dir.exists() && !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut staging = Staging::new(dir)?;
    let single = matches!(files, [(rel, _)] if rel.as_os_str().is_empty());
    let top = if single { staging.file(entry) } else { staging.directory(entry)? };
    for (rel, text) in files {
        let path = if single { top.clone() } else { top.join(rel) };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", dest.join(rel).display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", dest.join(rel).display()))?;
    }
    staging.commit_new()?;
    let files = files.iter().map(|(rel, _)| if single { dest.clone() } else { dest.join(rel) }).collect();
    Ok(Written { heap: dest, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case_heaps() {
        assert_eq!(type_name("bump"), "BumpHeap");
        assert_eq!(type_name("my-heap"), "MyHeap");
        assert_eq!(type_name("size_class"), "SizeClassHeap");
    }

    #[test]
    fn names_must_be_identifiers_and_file_names() {
        for bad in ["", "1heap", "a b", "../x", "x.rs", "é"] {
            assert!(check_name(bad, Skeleton::RustFile).is_err(), "{:?}", bad);
        }
        check_name("my_heap-2", Skeleton::RustCrate).unwrap();
    }

    /// Issue 27, item 15: `alloc8 new alloc8 --crate` wrote a crate cargo cannot build.
    #[test]
    fn a_crate_may_not_take_the_name_of_its_dependency_or_one_cargo_refuses() {
        for bad in ["alloc8", "std", "core", "fn", "test"] {
            let err = check_name(bad, Skeleton::RustCrate).unwrap_err().to_string();
            assert!(err.contains("cannot name a heap crate") && err.contains("choose another name"), "{}", err);
        }
        assert!(check_name("alloc8", Skeleton::RustCrate).unwrap_err().to_string().contains("the crate `alloc8`"));
        // A file heap is a module of the shim, whatever its name.
        check_name("alloc8", Skeleton::RustFile).unwrap();
        check_name("alloc8-heap", Skeleton::RustCrate).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = NewOptions { name: "alloc8".into(), skeleton: Skeleton::RustCrate, dir: dir.path().to_path_buf() };
        assert!(new(&opts).is_err());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was written");
    }

    /// Issue 27, item 9: a failure half-way (here a file that cannot be
    /// created where a directory should be) leaves nothing, and a retry works.
    #[test]
    fn a_failed_crate_leaves_nothing_and_a_retry_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("deep/er");
        let files = vec![
            (PathBuf::from("Cargo.toml"), "[package]\n".to_string()),
            (PathBuf::from("src/lib.rs"), "//\n".to_string()),
            (PathBuf::from("src/lib.rs/mod.rs"), "//\n".to_string()),
        ];
        let err = format!("{:#}", write_new(&target, "heap", &files).unwrap_err());
        assert!(err.contains("cannot create") && err.contains("heap/src/lib.rs/mod.rs"), "{}", err);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing is left, not even the directories made for it");
        let written = write_new(&target, "heap", &files[..2]).unwrap();
        assert_eq!(written.files, [target.join("heap/Cargo.toml"), target.join("heap/src/lib.rs")]);
        assert_eq!(std::fs::read_to_string(target.join("heap/src/lib.rs")).unwrap(), "//\n");
    }

    #[test]
    fn no_marker_survives_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        for skeleton in [Skeleton::RustFile, Skeleton::RustCrate, Skeleton::C] {
            let opts = NewOptions { name: "sk".into(), skeleton, dir: dir.path().join(format!("{:?}", skeleton)) };
            let written = new(&opts).unwrap();
            for f in &written.files {
                let text = std::fs::read_to_string(f).unwrap();
                assert!(!text.contains("@NAME@") && !text.contains("@TYPE@") && !text.contains("@FILE@"), "{}", f.display());
            }
            let again = new(&opts).err().unwrap().to_string();
            assert!(again.contains("already exists"), "{}", again);
        }
    }
}
