//! A heap given as a cargo crate: read with cargo_metadata (no resolution, so
//! it works offline), checked for a lib target, a registration and the alloc8
//! dependency the shim must share.

use super::{one_registration, Alloc8Dependency, HeapError, HeapKind, HeapSource};
use cargo_metadata::MetadataCommand;
use std::path::{Path, PathBuf};

pub fn open(dir: &Path) -> Result<HeapSource, HeapError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(HeapError::NotACrate(dir.to_path_buf()));
    }
    let dir = dir.canonicalize().map_err(|e| HeapError::Unreadable(dir.to_path_buf(), e.to_string()))?;
    let metadata = MetadataCommand::new()
        .manifest_path(dir.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| HeapError::Metadata(dir.clone(), cargo_cause(&e)))?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == dir.join("Cargo.toml"))
        .ok_or_else(|| HeapError::Metadata(dir.clone(), "no package in this Cargo.toml (a virtual workspace?)".into()))?;
    let lib = package
        .targets
        .iter()
        .find(|t| t.kind.iter().any(|k| k == "lib" || k == "rlib"))
        .ok_or_else(|| HeapError::NoLibTarget(dir.clone(), package.name.to_string()))?;

    let src_dir = lib.src_path.parent().map(|p| p.as_std_path().to_path_buf()).unwrap_or_else(|| dir.clone());
    let sources = rust_files(&src_dir)?;
    one_registration(&sources, lib.src_path.as_std_path())?;

    let alloc8 = package
        .dependencies
        .iter()
        .find(|d| d.name == "alloc8" && d.rename.is_none())
        .ok_or_else(|| HeapError::NoAlloc8(dir.clone(), package.name.to_string()))?;
    let alloc8 = match &alloc8.path {
        Some(path) => {
            let path = path.as_std_path().to_path_buf();
            check_version(&package.name, &path)?;
            Alloc8Dependency::Path(path)
        }
        None => Alloc8Dependency::Registry(alloc8.req.to_string()),
    };
    Ok(HeapSource { name: package.name.to_string(), kind: HeapKind::Crate { dir, package: package.name.to_string(), alloc8 } })
}

/// The heap crate's alloc8 must be the version whose API the templates call.
fn check_version(package: &str, alloc8_dir: &Path) -> Result<(), HeapError> {
    let manifest = alloc8_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| HeapError::Unreadable(manifest.clone(), e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| HeapError::Unreadable(manifest.clone(), e.message().to_string()))?;
    let found = table.get("package").and_then(|p| p.get("version")).and_then(|v| v.as_str()).unwrap_or("?");
    let expected = crate::build::templates::ALLOC8_VERSION;
    if found != expected {
        return Err(HeapError::Alloc8Version { package: package.to_string(), found: found.to_string(), expected: expected.to_string() });
    }
    Ok(())
}

fn rust_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, HeapError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| HeapError::Unreadable(d.clone(), e.to_string()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                let text = std::fs::read_to_string(&path).map_err(|e| HeapError::Unreadable(path.clone(), e.to_string()))?;
                out.push((path, text));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// cargo's own cause, `Caused by:` lines and all (cargo_errors), else the
/// error's first line.
fn cargo_cause(e: &cargo_metadata::Error) -> String {
    if let cargo_metadata::Error::CargoMetadata { stderr } = e {
        if let Some(cause) = crate::build::cargo_errors::cause(stderr) {
            return cause;
        }
    }
    let s = e.to_string();
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(&s).trim().to_string()
}
