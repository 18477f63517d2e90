//! Sources a recipe names by git repository and commit (`[repos.NAME]` in
//! alloc8.toml), checked out once into the cache and reused offline after.
//!
//! A checkout lives at `<cache>/repos/<name>-<hash of url and commit>`: one
//! directory per (repository, commit), so two recipes pinning different
//! commits never share a tree. It is made in a temporary directory and
//! renamed into place, so an interrupted fetch leaves nothing that looks
//! finished. Every use (fresh or reused) checks that HEAD is the pinned
//! commit. The `git` command does the work: it is on every machine that
//! builds C heaps, and it honours the user's proxies and credentials.
//! A variable (`env`, by default `ALLOC8_<NAME>_SRC`) set to a directory
//! replaces the checkout: a local clone, offline or patched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One `[repos.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repo {
    /// The URL `git clone` takes.
    pub git: String,
    /// The full 40-hex commit the recipe was checked with.
    pub rev: String,
    /// The variable that points at a local checkout instead.
    pub env: Option<String>,
}

impl Repo {
    /// The variable that overrides the checkout.
    pub fn env_var(&self, name: &str) -> String {
        self.env.clone().unwrap_or_else(|| default_env(name))
    }

    /// What is wrong with the table, in one line.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("[repos.{}]: a repository's name is letters, digits, `-` and `_`", name));
        }
        if self.git.trim().is_empty() {
            return Err(format!("[repos.{}]: `git` is empty: give the repository's URL", name));
        }
        if self.rev.len() != 40 || !self.rev.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "[repos.{}]: rev = {:?} is not a full commit hash (40 hex digits): pin the commit, e.g. from `git rev-parse HEAD`",
                name, self.rev
            ));
        }
        if let Some(v) = &self.env {
            let ident = v.chars().next().map_or(false, |c| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(format!("[repos.{}]: env = {:?} is not a variable name", name, v));
            }
        }
        Ok(())
    }
}

/// `ALLOC8_HEAP_LAYERS_SRC` for `heap-layers`.
pub fn default_env(name: &str) -> String {
    format!("ALLOC8_{}_SRC", name.to_ascii_uppercase().replace('-', "_"))
}

/// Why a repository's sources are not at hand; one line each.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The variable is set, but not to a directory.
    BadOverride { var: String, value: String },
    /// git could not fetch, and there is no cached checkout.
    Unreachable { name: String, url: String, rev: String, var: String, why: String },
    /// The repository was fetched but has no such commit.
    NoCommit { name: String, url: String, rev: String, var: String },
    /// The cache holds a checkout whose HEAD is not the commit, or a step failed.
    Cache { dir: PathBuf, why: String },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::BadOverride { var, value } => {
                write!(f, "{} is set to {:?}, which is not a directory: point it at a checkout, or unset it to fetch", var, value)
            }
            FetchError::Unreachable { name, url, rev, var, why } => write!(
                f,
                "cannot fetch [repos.{}] {} at commit {} ({}), and it is not in the cache yet: \
                 connect to the network once, or set {} to a checkout of that commit",
                name, url, rev, why, var
            ),
            FetchError::NoCommit { name, url, rev, var } => {
                write!(f, "[repos.{}] {} has no commit {}: fix `rev` in alloc8.toml, or set {} to a checkout", name, url, rev, var)
            }
            FetchError::Cache { dir, why } => {
                write!(f, "the cached checkout {} is not usable ({}): delete it and build again", dir.display(), why)
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// The directory holding `repo`'s sources: the override variable's, else
/// the cached checkout, fetched into `cache` first if need be. `fetching`
/// is told before a fetch starts (it may take a while).
pub fn checkout(name: &str, repo: &Repo, cache: &Path, fetching: &mut dyn FnMut(&str)) -> Result<PathBuf, FetchError> {
    let var = repo.env_var(name);
    if let Some(value) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(&value);
        if !dir.is_dir() {
            return Err(FetchError::BadOverride { var, value: value.to_string_lossy().into_owned() });
        }
        return Ok(dir);
    }
    let rev = repo.rev.to_ascii_lowercase();
    let dir = cache.join("repos").join(format!("{}-{}", name, &crate::build::cache::hash(&[&repo.git, &rev])[..12]));
    if dir.is_dir() {
        verify(&dir, &rev)?;
        return Ok(dir);
    }
    fetching(&format!("{} {} at {}", name, repo.git, &rev[..12]));
    let parent = dir.parent().expect("a checkout has a parent");
    std::fs::create_dir_all(parent).map_err(|e| FetchError::Cache { dir: parent.to_path_buf(), why: e.to_string() })?;
    let tmp = parent.join(format!(".{}.{}.tmp", dir.file_name().unwrap().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let fetched = fetch_into(&tmp, name, repo, &rev, &var);
    if let Err(e) = fetched {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another alloc8 finished the same checkout first: theirs is as good.
        if !dir.is_dir() {
            return Err(FetchError::Cache { dir, why: e.to_string() });
        }
    }
    verify(&dir, &rev)?;
    Ok(dir)
}

/// `git init`, fetch the one commit (shallow; else the whole repository,
/// for servers that refuse a commit by hash), check it out detached.
fn fetch_into(tmp: &Path, name: &str, repo: &Repo, rev: &str, var: &str) -> Result<(), FetchError> {
    let cache_err = |why: String| FetchError::Cache { dir: tmp.to_path_buf(), why };
    std::fs::create_dir_all(tmp).map_err(|e| cache_err(e.to_string()))?;
    git(tmp, &["init", "--quiet"]).map_err(cache_err)?;
    if git(tmp, &["fetch", "--quiet", "--depth", "1", "--", &repo.git, rev]).is_err() {
        let refs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"];
        let whole = git(tmp, &["fetch", "--quiet", "--", &repo.git, refs[0], refs[1]]);
        if let Err(why) = whole {
            return Err(FetchError::Unreachable { name: name.into(), url: repo.git.clone(), rev: rev.into(), var: var.into(), why });
        }
        let commit = format!("{}^{{commit}}", rev);
        if git(tmp, &["rev-parse", "--quiet", "--verify", &commit]).is_err() {
            return Err(FetchError::NoCommit { name: name.into(), url: repo.git.clone(), rev: rev.into(), var: var.into() });
        }
    }
    git(tmp, &["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", rev]).map_err(cache_err)?;
    Ok(())
}

/// HEAD of `dir` is `rev`.
fn verify(dir: &Path, rev: &str) -> Result<(), FetchError> {
    let head = git(dir, &["rev-parse", "HEAD"]).map_err(|why| FetchError::Cache { dir: dir.to_path_buf(), why })?;
    if head != rev {
        return Err(FetchError::Cache { dir: dir.to_path_buf(), why: format!("HEAD is {}, not the pinned {}", head, rev) });
    }
    Ok(())
}

/// `git -C dir args`: its trimmed stdout, or the last line it printed to
/// stderr. Never prompts (no terminal, no credential dialog), never reads
/// a repository from the caller's GIT_DIR, gives up on a stalled transfer.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"]).args(args);
    for v in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"] {
        cmd.env_remove(v);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true").env("SSH_ASKPASS", "true");
    cmd.env("GIT_SSH_COMMAND", std::env::var("GIT_SSH_COMMAND").unwrap_or_else(|_| "ssh -o BatchMode=yes".into()));
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run git: {}", e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).last().unwrap_or("git failed");
    Err(crate::output::one_line(last.strip_prefix("fatal: ").unwrap_or(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(rev: &str) -> Repo {
        Repo { git: "https://example.org/h".into(), rev: rev.into(), env: None }
    }

    #[test]
    fn names_revs_and_variables_are_checked() {
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(repo(full).check("heap-layers"), Ok(()));
        assert_eq!(repo(full).env_var("heap-layers"), "ALLOC8_HEAP_LAYERS_SRC");
        assert!(repo("main").check("h").unwrap_err().contains("40 hex digits"));
        assert!(repo(&full[..12]).check("h").unwrap_err().contains("full commit"));
        assert!(repo(full).check("a/b").unwrap_err().contains("letters, digits"));
        let bad_env = Repo { env: Some("1X".into()), ..repo(full) };
        assert!(bad_env.check("h").unwrap_err().contains("not a variable name"));
        let mut empty = repo(full);
        empty.git = " ".into();
        assert!(empty.check("h").unwrap_err().contains("URL"));
    }

    #[test]
    fn an_unreachable_repository_is_one_line_naming_url_commit_and_variable() {
        let e = FetchError::Unreachable {
            name: "hoard".into(),
            url: "https://github.com/emeryberger/Hoard".into(),
            rev: "0".repeat(40),
            var: "ALLOC8_HOARD_SRC".into(),
            why: "Could not resolve host: github.com".into(),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'));
        for part in ["https://github.com/emeryberger/Hoard", &"0".repeat(40), "ALLOC8_HOARD_SRC", "Could not resolve host"] {
            assert!(text.contains(part), "{} lacks {}", text, part);
        }
    }
}
