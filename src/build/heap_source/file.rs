//! A heap in a single Rust file, optionally declaring crates it uses in an
//! embedded manifest at the top of the file (the cargo-script convention):
//!
//! ```text
//! //! ```cargo
//! //! [dependencies]
//! //! dlmalloc = "0.2"
//! //! ```
//! ```

use super::{one_registration, HeapError, HeapKind, HeapSource};
use std::path::Path;

pub fn open(path: &Path) -> Result<HeapSource, HeapError> {
    if path.extension().and_then(|e| e.to_str()) != Some("rs") {
        return Err(HeapError::NotRust(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| HeapError::Unreadable(path.to_path_buf(), e.to_string()))?;
    one_registration(&[(path.to_path_buf(), text.clone())], path)?;
    let path = path.canonicalize().map_err(|e| HeapError::Unreadable(path.to_path_buf(), e.to_string()))?;
    let dependencies = match embedded_manifest(&text) {
        Some(manifest) => dependencies(&manifest, path.parent().unwrap()).map_err(|e| HeapError::BadManifest(path.clone(), e))?,
        None => String::new(),
    };
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("heap").to_string();
    Ok(HeapSource { name, kind: HeapKind::File { path, dependencies } })
}

/// The text of a ```` ```cargo ```` block in the file's leading `//!` comments.
pub fn embedded_manifest(text: &str) -> Option<String> {
    let mut inside = false;
    let mut manifest = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(doc) = line.strip_prefix("//!") else {
            if line.is_empty() || line.starts_with("//") || line.starts_with("#![") {
                continue;
            }
            break; // the first item: no manifest past this point
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if !inside {
            inside = doc.trim_end() == "```cargo";
        } else if doc.trim_end() == "```" {
            return Some(manifest);
        } else {
            manifest.push_str(doc);
            manifest.push('\n');
        }
    }
    None
}

/// The manifest's `[dependencies]`, as TOML text for the shim's Cargo.toml,
/// with relative `path`s made absolute (the shim crate lives elsewhere).
fn dependencies(manifest: &str, base: &Path) -> Result<String, String> {
    let mut table: toml::Table = manifest.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    if let Some(key) = table.keys().find(|k| k.as_str() != "dependencies") {
        return Err(format!("only [dependencies] may be declared here, found `{}`", key));
    }
    let Some(deps) = table.remove("dependencies") else {
        return Ok(String::new());
    };
    let toml::Value::Table(mut deps) = deps else {
        return Err("[dependencies] must be a table".into());
    };
    if deps.contains_key("alloc8") {
        return Err("do not declare alloc8 here: the shim provides it".into());
    }
    for (_, spec) in deps.iter_mut() {
        if let toml::Value::Table(spec) = spec {
            if let Some(toml::Value::String(p)) = spec.get_mut("path") {
                *p = base.join(&*p).to_string_lossy().into_owned();
            }
        }
    }
    // One `name = value` line each, a table inline: `toml::to_string` would
    // write `mine = { path = .. }` as a `[mine]` section, which lands outside
    // [dependencies] in the shim's manifest and is dropped.
    Ok(deps.iter().map(|(name, spec)| format!("{} = {}\n", name, spec)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_embedded_manifest() {
        let text = "//! A heap.\n//!\n//! ```cargo\n//! [dependencies]\n//! dlmalloc = \"0.2\"\n//! ```\nuse x;\n";
        assert_eq!(embedded_manifest(text).unwrap(), "[dependencies]\ndlmalloc = \"0.2\"\n");
        assert_eq!(dependencies(&embedded_manifest(text).unwrap(), Path::new("/h")).unwrap(), "dlmalloc = \"0.2\"\n");
    }

    #[test]
    fn no_manifest_after_the_first_item() {
        assert!(embedded_manifest("use x;\n//! ```cargo\n//! [dependencies]\n//! ```\n").is_none());
        assert!(embedded_manifest("//! plain docs\nfn f() {}\n").is_none());
    }

    #[test]
    fn relative_paths_become_absolute_and_other_tables_are_refused() {
        let deps = dependencies("[dependencies]\nmine = { path = \"../mine\" }\n", Path::new("/heaps")).unwrap();
        assert_eq!(deps, "mine = { path = \"/heaps/../mine\" }\n");
        assert!(dependencies("[package]\nname = \"x\"\n", Path::new("/")).unwrap_err().contains("only [dependencies]"));
        assert!(dependencies("[dependencies]\nalloc8 = \"1\"\n", Path::new("/")).unwrap_err().contains("alloc8"));
        assert!(dependencies("[dependencies\n", Path::new("/")).is_err());
    }
}
