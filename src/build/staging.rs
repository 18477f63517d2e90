//! Writing a build's files so that a failed build leaves nothing behind: each
//! file is written under a hidden temporary name in the output directory,
//! checked there, and renamed into place only once every one is ready. A
//! rename also replaces rather than rewrites a library a running program may
//! have mapped. `alloc8 new` stages a whole crate directory the same way and
//! commits without replacing anything (`commit_new`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub struct Staging {
    out: PathBuf,
    /// Directories this build created for `out`, innermost first: a failed
    /// build removes them again.
    created: Vec<PathBuf>,
    /// (temporary path, final path), in the order the files were staged;
    /// no final path for scratch files.
    files: Vec<(PathBuf, Option<PathBuf>)>,
    committed: bool,
}

impl Staging {
    /// Creates `out` (and its missing parents) to stage files in.
    pub fn new(out: &Path) -> Result<Staging> {
        let created = out.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).map(Path::to_path_buf).collect();
        let staging = Staging { out: out.to_path_buf(), created, files: Vec::new(), committed: false };
        std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
        Ok(staging)
    }

    /// Where to write the file that becomes `out/name` on commit.
    pub fn file(&mut self, name: &str) -> PathBuf {
        let tmp = self.temporary(name);
        self.files.push((tmp.clone(), Some(self.out.join(name))));
        tmp
    }

    /// Where to write a file the build needs on the way (a tool's input),
    /// removed whatever happens.
    pub fn scratch(&mut self, name: &str) -> PathBuf {
        let tmp = self.temporary(name);
        self.files.push((tmp.clone(), None));
        tmp
    }

    fn temporary(&self, name: &str) -> PathBuf {
        self.out.join(format!(".{}.{}.tmp", name, std::process::id()))
    }

    /// A directory to fill that becomes `out/name` on commit.
    pub fn directory(&mut self, name: &str) -> Result<PathBuf> {
        let tmp = self.file(name);
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(tmp)
    }

    /// Copies `from` to a staged `out/name`; returns the staged path.
    pub fn copy(&mut self, from: &Path, name: &str) -> Result<PathBuf> {
        let tmp = self.file(name);
        std::fs::copy(from, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(tmp)
    }

    /// Moves every staged file into place; returns their final paths.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (tmp, dest) in &self.files {
            if let Some(dest) = dest {
                std::fs::rename(tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
                written.push(dest.clone());
            }
        }
        self.committed = true;
        Ok(written)
    }

    /// Moves every staged file or directory into place, none over anything
    /// that exists (an existing one fails the commit, and what this commit
    /// had already moved is removed again).
    pub fn commit_new(mut self) -> Result<Vec<PathBuf>> {
        let mut written: Vec<PathBuf> = Vec::new();
        for (tmp, dest) in &self.files {
            let Some(dest) = dest else { continue };
            if let Err(e) = rename_new(tmp, dest) {
                for done in &written {
                    remove(done);
                }
                return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!("{} already exists: choose another name, or remove it first", dest.display())
                } else {
                    anyhow::Error::new(e).context(format!("cannot write {}", dest.display()))
                });
            }
            written.push(dest.clone());
        }
        self.committed = true;
        Ok(written)
    }
}

/// A file or a whole directory tree.
fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(path)),
        _ => drop(std::fs::remove_file(path)),
    }
}

/// `rename` that never replaces `to`: renameat2(RENAME_NOREPLACE) where the
/// file system has it, else a check just before (a race only another
/// process creating `to` in between could lose).
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput);
        let (f, t) = (c(from)?, c(to)?);
        let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (tmp, dest) in &self.files {
            if dest.is_none() || !self.committed {
                remove(tmp);
            }
        }
        if self.committed {
            return;
        }
        for dir in &self.created {
            // Only if empty: someone else may have put files there meanwhile.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_left_unless_committed() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("a/b");
        {
            let mut staging = Staging::new(&out).unwrap();
            std::fs::write(staging.file("libx.so"), "x").unwrap();
            assert!(out.is_dir());
        }
        assert!(!root.path().join("a").exists(), "the directories it made are gone too");

        let mut staging = Staging::new(&out).unwrap();
        std::fs::write(staging.file("libx.so"), "x").unwrap();
        std::fs::write(staging.file("x.h"), "h").unwrap();
        std::fs::write(staging.scratch("x.def"), "d").unwrap();
        let written = staging.commit().unwrap();
        assert_eq!(written, [out.join("libx.so"), out.join("x.h")]);
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {:?}", names);
    }

    #[test]
    fn a_new_directory_appears_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("new");
        {
            let mut staging = Staging::new(&out).unwrap();
            let dir = staging.directory("crate").unwrap();
            std::fs::write(dir.join("Cargo.toml"), "x").unwrap();
            // Dropped without commit: a failure half-way.
        }
        assert!(!out.exists(), "nothing is left of a directory that was not committed");

        let mut staging = Staging::new(&out).unwrap();
        std::fs::create_dir_all(out.join("crate")).unwrap();
        let dir = staging.directory("crate").unwrap();
        std::fs::write(dir.join("Cargo.toml"), "x").unwrap();
        let err = staging.commit_new().unwrap_err().to_string();
        assert!(err.contains("already exists"), "{}", err);
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["crate"], "the existing directory stays, empty, and the staged one is gone");
        assert!(std::fs::read_dir(out.join("crate")).unwrap().next().is_none());
    }

    #[test]
    fn an_existing_directory_stays() {
        let root = tempfile::tempdir().unwrap();
        drop(Staging::new(root.path()).unwrap());
        assert!(root.path().is_dir());
    }
}
