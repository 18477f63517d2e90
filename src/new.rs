//! `alloc8 new NAME [--crate | --c]`: writes a heap skeleton that builds at
//! once and passes `alloc8 test`: a size-class heap with a lock, commented as
//! a starting point. A single Rust file by default; a heap crate with
//! `--crate` (with a copy of the alloc8 crate beside it, so it builds without
//! a checkout or the network); a C file in the xxmalloc convention with `--c`.

use crate::build::templates;
use crate::output::outln;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Clone)]
pub struct NewArgs {
    /// The heap's name: the file (NAME.rs, NAME.c) or crate directory (NAME/).
    #[arg(value_name = "NAME", required_unless_present = "list")]
    pub name: Option<String>,
    /// List the ready heaps instead (as `alloc8 heaps`): each can be given by name to --heap.
    #[arg(long, conflicts_with_all = ["krate", "c"])]
    pub list: bool,
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
    let Some(name) = args.name.filter(|_| !args.list) else {
        crate::output::stdout(&crate::build::ready::listing()).context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    };
    let skeleton = match (args.krate, args.c) {
        (true, _) => Skeleton::RustCrate,
        (_, true) => Skeleton::C,
        _ => Skeleton::RustFile,
    };
    let written = new(&NewOptions { name, skeleton, dir: args.dir })?;
    let heap = written.heap.display();
    let files = match written.files.len() {
        1 => "1 file".to_string(),
        n => format!("{} files", n),
    };
    outln!("wrote {} ({})\nnext: alloc8 build --heap {heap}    # or: alloc8 run --heap {heap} -- PROG ARGS...", heap, files)
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
pub struct Written {
    pub heap: PathBuf,
    pub files: Vec<PathBuf>,
}

/// The Rust skeleton; `@NAME@`, `@TYPE@` and `@FILE@` are filled in.
const HEAP_RS: &str = include_str!("../templates/new/heap.rs");
/// The C skeleton is the shipped C heap, which the test suite runs real programs under.
const HEAP_C: &str = include_str!("../shims/xx_bump.c");

pub fn new(opts: &NewOptions) -> Result<Written> {
    check_name(&opts.name)?;
    let type_name = type_name(&opts.name);
    match opts.skeleton {
        Skeleton::RustFile => {
            let path = opts.dir.join(format!("{}.rs", opts.name));
            let text = fill(HEAP_RS, &opts.name, &type_name, &path.display().to_string());
            write_new(&[(path.clone(), text)])?;
            Ok(Written { heap: path.clone(), files: vec![path] })
        }
        Skeleton::C => {
            let path = opts.dir.join(format!("{}.c", opts.name));
            let text = HEAP_C.replace("shims/xx_bump.c", &path.display().to_string());
            write_new(&[(path.clone(), text)])?;
            Ok(Written { heap: path.clone(), files: vec![path] })
        }
        Skeleton::RustCrate => {
            let root = opts.dir.join(&opts.name);
            let mut files = vec![
                (root.join("Cargo.toml"), cargo_toml(&opts.name)),
                (root.join("src/lib.rs"), fill(HEAP_RS, &opts.name, &type_name, &format!("{}/", root.display()))),
            ];
            // The alloc8 crate as this alloc8 embeds it: the heap builds
            // offline, and always against the version that builds its shims.
            for (rel, text) in templates::ALLOC8_CRATE {
                files.push((root.join("alloc8").join(rel), text.to_string()));
            }
            write_new(&files)?;
            Ok(Written { heap: root, files: files.into_iter().map(|(p, _)| p).collect() })
        }
    }
}

/// A crate name and a C file name both: letters, digits, `_`, `-`, starting with a letter.
fn check_name(name: &str) -> Result<()> {
    // `alloc8 new h.rs`: the name, and the extension the skeleton gives.
    for (ext, flag) in [(".rs", ""), (".c", " --c"), (".cpp", " --c"), (".cc", " --c")] {
        if let Some(stem) = name.strip_suffix(ext).filter(|s| check_name(s).is_ok()) {
            bail!(
                "give the heap's name without an extension: `alloc8 new {}{}` writes {}{}",
                stem,
                flag,
                stem,
                if flag.is_empty() { ".rs" } else { ".c" }
            );
        }
    }
    let ok = name.chars().next().map_or(false, |c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        bail!("`{}` cannot name a heap: use letters, digits, `_` and `-`, starting with a letter (e.g. `myheap`)", name);
    }
    Ok(())
}

/// `my-heap` -> `MyHeap`; `bump` -> `BumpHeap`; `myheap2` -> `Myheap2`: the
/// name given, with `Heap` added only when it has no "heap" in it already.
fn type_name(name: &str) -> String {
    let mut out: String = name
        .split(|c| c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(cs).collect::<String>()
        })
        .collect();
    if !out.to_ascii_lowercase().contains("heap") {
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

/// Writes every file, refusing to overwrite anything that exists.
fn write_new(files: &[(PathBuf, String)]) -> Result<()> {
    if let Some((existing, _)) = files.iter().find(|(p, _)| p.exists()) {
        bail!("{} already exists: choose another name, or remove it first", existing.display());
    }
    if let Some((first, _)) = files.first() {
        let top = first.parent().unwrap_or(Path::new("."));
        if top.exists() && !top.is_dir() {
            bail!("{} is not a directory", top.display());
        }
    }
    for (path, text) in files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case_heaps() {
        assert_eq!(type_name("bump"), "BumpHeap");
        assert_eq!(type_name("my-heap"), "MyHeap");
        assert_eq!(type_name("size_class"), "SizeClassHeap");
        assert_eq!(type_name("myheap2"), "Myheap2");
        assert_eq!(type_name("heap_of_pages"), "HeapOfPages");
    }

    #[test]
    fn names_must_be_identifiers_and_file_names() {
        for bad in ["", "1heap", "a b", "../x", "x.rs", "é"] {
            assert!(check_name(bad).is_err(), "{:?}", bad);
        }
        check_name("my_heap-2").unwrap();
        let err = check_name("h.rs").unwrap_err().to_string();
        assert!(err.contains("`alloc8 new h` writes h.rs"), "{}", err);
        assert!(check_name("h.c").unwrap_err().to_string().contains("`alloc8 new h --c` writes h.c"));
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
