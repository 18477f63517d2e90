//! The recorder library (`liballoc8_recorder.so`), built once from
//! templates/recorder/ and the alloc8 crate into the cache, like a shim
//! (cargo makes a rebuild with no change a no-op).

use crate::build::cache;
use crate::build::cargo_build::{self, CargoBuild, Outcome};
use crate::build::templates;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

const CARGO_TOML: &str = include_str!("../../templates/recorder/Cargo.toml");
const BUILD_RS: &str = include_str!("../../templates/recorder/build.rs");
const LIB_RS: &str = include_str!("../../templates/recorder/src/lib.rs");

/// The recorder's path, built if needed.
pub fn build(verbose: bool) -> Result<PathBuf> {
    let cache = cache::dir();
    let alloc8 = templates::write_alloc8_crate(&cache)?;
    let dir = cache.join("recorder");
    let dep = format!("{{ path = {:?} }}", alloc8.to_string_lossy());
    cache::write_if_changed(&dir.join("Cargo.toml"), &CARGO_TOML.replace("@ALLOC8_DEPENDENCY@", &dep))?;
    cache::write_if_changed(&dir.join("build.rs"), BUILD_RS)?;
    cache::write_if_changed(&dir.join("src/lib.rs"), LIB_RS)?;
    // Fresh by content: the inputs' hash beside the library it built; a
    // match skips cargo (whose own no-op check costs a few hundred ms).
    let mut inputs: Vec<&str> = vec![CARGO_TOML, BUILD_RS, LIB_RS];
    inputs.extend(templates::ALLOC8_CRATE.iter().map(|(_, text)| *text));
    let key = cache::hash(&inputs);
    let stamp = dir.join("built.stamp");
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        if let Some((hash, so)) = text.split_once('\n') {
            let so = PathBuf::from(so.trim_end());
            if hash == key && so.is_file() {
                return Ok(so);
            }
        }
    }
    let manifest = dir.join("Cargo.toml");
    let outcome = cargo_build::build(&CargoBuild {
        manifest: &manifest,
        target_dir: &cache.join("target"),
        target: None,
        verbose,
        cargo: None,
        env: Vec::new(),
        offline: false,
        generated: &[&dir, &alloc8],
        rustc_args: Vec::new(),
    })
    .context("cannot build the recorder library")?;
    match outcome {
        Outcome::Built(files) => match files.into_iter().find(|p| p.extension().map_or(false, |e| e == "so")) {
            Some(so) => {
                cache::write_if_changed(&stamp, &format!("{}\n{}\n", key, so.display()))?;
                Ok(so)
            }
            None => bail!("building the recorder produced no shared library"),
        },
        _ => bail!("the recorder library does not compile (the compiler's errors are above): this is a bug in alloc8"),
    }
}

#[cfg(test)]
mod tests {
    /// The recorder forwards and records exactly the names the contract
    /// table says a Linux interposer defines.
    #[test]
    fn the_recorder_exports_the_contract_tables_linux_interposition_list() {
        use crate::contract::{Family, Mode, Platform, EXPORTS};
        let mut ours: Vec<&str> = super::LIB_RS
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("export!(").map(|rest| rest.split_whitespace().nth(1).unwrap()))
            .map(|s| s.split('(').next().unwrap())
            .collect();
        let mut table: Vec<&str> = EXPORTS
            .iter()
            .filter(|e| e.modes.contains(&Mode::Interpose) && e.platforms.contains(&Platform::Linux) && e.family != Family::ThreadStart)
            .map(|e| e.name)
            .collect();
        ours.sort();
        table.sort();
        assert_eq!(ours, table);
        // And each one is an operation of the trace format.
        for name in ours {
            assert!(alloc8::record::format::OPS.iter().any(|s| s.name == name), "{} has no trace op", name);
        }
    }
}
