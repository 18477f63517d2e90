//! Writing a build's files so that a failed build leaves nothing behind: each
//! file is written under a hidden temporary name in the output directory,
//! checked there, and renamed into place only once every one is ready. A
//! rename also replaces rather than rewrites a library a running program may
//! have mapped.

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
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (tmp, dest) in &self.files {
            if dest.is_none() || !self.committed {
                let _ = std::fs::remove_file(tmp);
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
    fn an_existing_directory_stays() {
        let root = tempfile::tempdir().unwrap();
        drop(Staging::new(root.path()).unwrap());
        assert!(root.path().is_dir());
    }
}
