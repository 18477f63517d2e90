//! `run --output FILE`, claimed before the program starts: a report that
//! cannot be written must not cost the user a run (and its exit status).
//! The file is opened for writing now, without truncating it; the report
//! replaces its contents at the end. A file created here and never written
//! (an error before the report) is removed again.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct OutputFile {
    path: PathBuf,
    file: File,
    created: bool,
    written: bool,
}

impl OutputFile {
    /// Opens `path` for the report, or says why it cannot be.
    pub fn claim(path: &Path) -> Result<OutputFile> {
        if path.is_dir() {
            bail!("--output {}: that is a directory; give a file name", path.display());
        }
        let existed = path.symlink_metadata().is_ok();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot write the report to --output {} (checked before starting the program)", path.display()))?;
        Ok(OutputFile { path: path.to_path_buf(), file, created: !existed, written: false })
    }

    /// Refuses an output that is one of the run's inputs (the program, the library).
    pub fn refuse_input(&self, what: &str, input: &Path) -> Result<()> {
        let ours = self.file.metadata()?;
        if let Ok(theirs) = std::fs::metadata(input) {
            if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) {
                bail!(
                    "--output {} is {} ({}): the report would overwrite it; give another file",
                    self.path.display(),
                    what,
                    input.display()
                );
            }
        }
        Ok(())
    }

    /// Replaces the file's contents with `text`.
    pub fn write(&mut self, text: &str) -> Result<()> {
        let file = &mut self.file;
        let result = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(text.as_bytes()));
        self.written = true;
        result.with_context(|| format!("cannot write the report to {}", self.path.display()))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.created && !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
