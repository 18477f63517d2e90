//! `alloc8.toml`: what a C/C++ heap directory asks the compiler for.
//!
//! ```toml
//! name = "myheap"              # optional: the library name (default: the directory's)
//! sources = ["heap.cpp", "src/pool.c"]
//! include = ["include"]        # -I, relative to the directory
//! define = ["NDEBUG", "CLASSES=64"]
//! flags = ["-fno-exceptions"]  # passed to the compiler as they are
//! c_std = "c11"                # -std= for the C sources
//! cxx_std = "c++17"            # -std= for the C++ sources
//! free_preserves_errno = true  # promise: xxfree never changes errno
//! sets_enomem = true           # promise: a NULL from xxmalloc/xxmemalign/xxrealloc comes with errno = ENOMEM
//! free_accepts_null = true     # promise: xxfree (and xxfree_sized, xxfree_aligned_sized) take NULL and do nothing
//! malloc_accepts_zero = true   # promise: xxmalloc(0), xxmemalign(a, 0) (and xxcalloc(1, 0)) give a unique block
//! max_size = 1099511627776     # the largest size (and alignment) the heap is asked for: larger ones are NULL + ENOMEM
//! max_align = 4096             # the largest alignment xxmemalign honours: the shim serves larger ones around it
//!
//! [repos.hoard]                # sources fetched by git, pinned (see xx_fetch)
//! git = "https://github.com/emeryberger/Hoard"
//! rev = "<40-hex commit>"
//! env = "ALLOC8_HOARD_SRC"     # optional (this is the default): a local checkout instead
//! ```
//!
//! Paths may use `${repos.NAME}` (the checkout of `[repos.NAME]`) and
//! `${VAR}` (an environment variable).
//!
//! The promises let the shim skip its own work (a save and restore of errno
//! around every free, a NULL check after every allocation, a NULL test
//! before every free, a zero-size fix-up before every allocation); the
//! conformance program checks each rule, so `alloc8 test` finds a broken one.

use super::xx_fetch::Repo;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: Option<String>,
    pub sources: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub define: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    pub c_std: Option<String>,
    pub cxx_std: Option<String>,
    #[serde(default)]
    pub free_preserves_errno: bool,
    #[serde(default)]
    pub sets_enomem: bool,
    #[serde(default)]
    pub free_accepts_null: bool,
    #[serde(default)]
    pub malloc_accepts_zero: bool,
    pub max_size: Option<u64>,
    pub max_align: Option<u64>,
    #[serde(default)]
    pub repos: BTreeMap<String, Repo>,
}

/// The manifest, or what is wrong with it in one line.
pub fn parse(text: &str) -> Result<Manifest, String> {
    let m: Manifest = toml::from_str(text).map_err(|e| e.message().trim().to_string())?;
    if m.sources.is_empty() {
        return Err("`sources` is empty: list the .c/.cpp files to compile".into());
    }
    if let Some(name) = &m.name {
        if name.is_empty() || name.contains(['/', '\\']) {
            return Err(format!("name {:?} must be a plain file name (the library becomes lib<name>.so)", name));
        }
    }
    for d in &m.define {
        let name = split_define(d).0;
        let ident = name.chars().next().map_or(false, |c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!("define {:?} is not NAME or NAME=VALUE", d));
        }
    }
    for (key, std) in [("c_std", &m.c_std), ("cxx_std", &m.cxx_std)] {
        if let Some(s) = std {
            if s.is_empty() || s.starts_with('-') || s.contains(char::is_whitespace) {
                return Err(format!("{} = {:?}: give the standard alone, e.g. \"c++17\"", key, s));
            }
        }
    }
    if m.max_size == Some(0) {
        return Err("max_size = 0 would refuse every request: give the largest block the heap serves, in bytes".into());
    }
    if let Some(a) = m.max_align {
        if !a.is_power_of_two() || a < 16 {
            return Err(format!(
                "max_align = {}: give the largest alignment xxmemalign honours, a power of two of at least 16 (16: none beyond malloc's)",
                a
            ));
        }
    }
    for (name, repo) in &m.repos {
        repo.check(name)?;
    }
    Ok(m)
}

/// What is wrong with a `${NAME}` in a path.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// The variable is unset or empty.
    Unset(String),
    Syntax(String),
}

/// `${NAME}` in a path replaced by what `lookup` gives for `NAME` (an
/// environment variable's value, or a `repos.` checkout), so a recipe can
/// point at sources kept elsewhere (`${repos.hoard}/src`).
pub fn expand(text: &str, lookup: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ExpandError::Syntax(format!("`{}` has a `${{` without its `}}`", text)))?;
        let name = &after[..end];
        match lookup(name) {
            Some(v) if !v.is_empty() => out.push_str(&v),
            _ => return Err(ExpandError::Unset(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn split_define(d: &str) -> (String, Option<String>) {
    match d.split_once('=') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (d.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest() {
        let m = parse(
            "name = \"h\"\nsources = [\"a.cpp\"]\ninclude = [\"inc\"]\ndefine = [\"N=4\", \"X\"]\nflags = [\"-O3\"]\ncxx_std = \"c++17\"\n",
        )
        .unwrap();
        assert_eq!(m.sources, ["a.cpp"]);
        assert_eq!(split_define(&m.define[0]), ("N".to_string(), Some("4".to_string())));
        assert_eq!(split_define(&m.define[1]), ("X".to_string(), None));
        assert_eq!(m.cxx_std.as_deref(), Some("c++17"));
        assert!(!m.free_preserves_errno && !m.sets_enomem && !m.free_accepts_null && !m.malloc_accepts_zero, "no promise unless made");
        let promised =
            "sources = [\"a.c\"]\nfree_preserves_errno = true\nsets_enomem = true\nfree_accepts_null = true\nmalloc_accepts_zero = true\n";
        let m = parse(promised).unwrap();
        assert!(m.free_preserves_errno && m.sets_enomem && m.free_accepts_null && m.malloc_accepts_zero);
        assert_eq!(parse("sources = [\"a.c\"]\nmax_size = 4096\n").unwrap().max_size, Some(4096));
        assert!(parse("sources = [\"a.c\"]\nmax_size = 0\n").unwrap_err().contains("max_size = 0"));
        assert!(parse("sources = [\"a.c\"]\nmax_size = -1\n").is_err());
        assert_eq!(parse("sources = [\"a.c\"]\nmax_align = 4096\n").unwrap().max_align, Some(4096));
        assert_eq!(parse("sources = [\"a.c\"]\n").unwrap().max_align, None);
        for bad in ["0", "8", "3000"] {
            let err = parse(&format!("sources = [\"a.c\"]\nmax_align = {}\n", bad)).unwrap_err();
            assert!(err.starts_with(&format!("max_align = {}: ", bad)) && err.contains("power of two of at least 16"), "{}", err);
        }
    }

    #[test]
    fn variables_in_paths_expand_and_unset_ones_are_named() {
        let mut lookup = |name: &str| match name {
            "ALLOC8_TEST_EXPAND_DIR" => Some("/src/heap".to_string()),
            "repos.h" => Some("/cache/repos/h-1".to_string()),
            _ => None,
        };
        assert_eq!(expand("${ALLOC8_TEST_EXPAND_DIR}/include", &mut lookup).unwrap(), "/src/heap/include");
        assert_eq!(expand("${repos.h}/src", &mut lookup).unwrap(), "/cache/repos/h-1/src");
        assert_eq!(expand("plain/dir", &mut lookup).unwrap(), "plain/dir");
        assert_eq!(expand("${ALLOC8_TEST_NEVER_SET}/x", &mut lookup), Err(ExpandError::Unset("ALLOC8_TEST_NEVER_SET".into())));
        assert!(matches!(expand("${OPEN", &mut lookup), Err(ExpandError::Syntax(e)) if e.contains("without its")));
    }

    #[test]
    fn repositories_are_pinned_by_full_commit() {
        let rev = "0123456789abcdef0123456789abcdef01234567";
        let m = parse(&format!("sources = [\"${{repos.h}}/a.c\"]\n[repos.h]\ngit = \"file:///r\"\nrev = \"{}\"\n", rev)).unwrap();
        assert_eq!(m.repos["h"].rev, rev);
        assert_eq!(m.repos["h"].env_var("h"), "ALLOC8_H_SRC");
        let short = parse("sources = [\"a.c\"]\n[repos.h]\ngit = \"file:///r\"\nrev = \"main\"\n").unwrap_err();
        assert!(short.contains("40 hex digits"), "{}", short);
        let unknown = parse(&format!("sources = [\"a.c\"]\n[repos.h]\ngit = \"u\"\nrev = \"{}\"\nbranch = \"x\"\n", rev)).unwrap_err();
        assert!(unknown.contains("unknown field `branch`"), "{}", unknown);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(parse("sources = [\"a.c\"]\nsource_dirs = [\"x\"]\n").unwrap_err().contains("unknown field `source_dirs`"));
        assert!(parse("include = [\"x\"]\n").unwrap_err().contains("missing field `sources`"));
        assert!(parse("sources = []\n").unwrap_err().contains("empty"));
        assert!(parse("sources = [\"a.c\"]\ndefine = [\"1X\"]\n").unwrap_err().contains("NAME"));
        assert!(parse("sources = [\"a.c\"]\ncxx_std = \"-std=c++17\"\n").unwrap_err().contains("alone"));
        assert!(parse("sources = \"a.c\"\n").is_err());
        // A promise is a yes or no, in one line that names what is wrong.
        let err = parse("sources = [\"a.c\"]\nfree_accepts_null = \"yes\"\n").unwrap_err();
        assert!(err.contains("expected a boolean") && !err.contains('\n'), "{}", err);
        assert!(parse("sources = [\"a.c\"]\nfree_accept_null = true\n").unwrap_err().contains("unknown field `free_accept_null`"));
    }
}
