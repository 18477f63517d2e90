//! Makes the staticlib cargo built into an archive that links beside anything.
//!
//! Cargo's staticlib is the shim plus all of std, core, alloc and
//! compiler_builtins as ~300 members with global symbols. Two such archives
//! (two prefixes) or one archive and a Rust program define the same names
//! (`__rustc::__rust_alloc`, std's functions, `rust_eh_personality`), and the
//! link fails with "multiple definition", or worse, silently binds one copy's
//! code to the other's. Its members also carry LLVM bitcode (`.llvmbc`) that
//! the system linker's LLVM plugin, when it is older than rustc's LLVM, aborts on.
//!
//! So the archive is rebuilt with binutils:
//! 1. `ld -r -u <prefix>_malloc ...`: one relocatable object holding the
//!    exports and exactly the members they need;
//! 2. `objcopy --keep-global-symbols`: every other defined symbol becomes
//!    local, so it can neither clash nor be bound by another object; COMDAT
//!    group signatures (`DW.ref.rust_eh_personality`) are renamed so the
//!    linker does not fold our group into another copy's; debug info and the
//!    bitcode sections go;
//! 3. `ar`: that single object is the archive.

use anyhow::{bail, Context, Result};
use object::{Object, ObjectComdat, ObjectSymbol};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Rebuilds the staticlib `raw` as `dest`, keeping only `keep` global.
/// `tag` makes renamed COMDAT signatures unique to this library.
pub fn seal(raw: &Path, dest: &Path, keep: &[String], tag: &str) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let combined = dir.path().join("combined.o");
    let member = dir.path().join(format!("{}.o", tag));

    let mut ld = Command::new("ld");
    ld.arg("-r").arg("-o").arg(&combined);
    for name in keep {
        ld.arg("-u").arg(name);
    }
    run(ld.arg(raw), "ld")?;

    let data = std::fs::read(&combined).with_context(|| format!("cannot read {}", combined.display()))?;
    let object = object::File::parse(&*data).context("ld -r produced an unreadable object")?;
    let mut renames = String::new();
    for signature in comdat_signatures(&object) {
        if !keep.contains(&signature) {
            let _ = writeln!(renames, "{} alloc8.{}.{}", signature, tag, signature);
        }
    }
    let keep_file = dir.path().join("keep");
    let renames_file = dir.path().join("renames");
    std::fs::write(&keep_file, keep.join("\n") + "\n").context("cannot write a temporary file")?;
    std::fs::write(&renames_file, renames).context("cannot write a temporary file")?;

    let mut objcopy = Command::new("objcopy");
    objcopy
        .arg(format!("--keep-global-symbols={}", keep_file.display()))
        .arg(format!("--redefine-syms={}", renames_file.display()))
        .args(["--strip-debug", "--remove-section=.llvmbc", "--remove-section=.llvmcmd"])
        .arg(&combined)
        .arg(&member);
    run(&mut objcopy, "objcopy")?;

    // A fresh archive beside the destination, renamed over it: a build never
    // appends to an old archive, and a reader never sees half of one.
    let tmp = dest.with_extension(format!("a.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    run(Command::new("ar").arg("rcsD").arg(&tmp).arg(&member), "ar")?;
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

fn comdat_signatures(object: &object::File) -> Vec<String> {
    object.comdats().filter_map(|c| object.symbol_by_index(c.symbol()).ok()).filter_map(|s| s.name().ok().map(str::to_string)).collect()
}

fn run(cmd: &mut Command, tool: &str) -> Result<()> {
    let output = cmd.output().with_context(|| {
        format!("cannot run `{}`: prefixed mode needs GNU binutils (ld, objcopy, ar) to make the static library; install binutils", tool)
    })?;
    if !output.status.success() {
        // The tool's own lines first, as it wrote them; ours stays one line.
        crate::output::stderr(&String::from_utf8_lossy(&output.stderr));
        bail!("`{}` failed while making the static library (its errors are above)", tool);
    }
    Ok(())
}
