//! Lines gathered in memory and appended to a file together: while finished tasks arrive
//! back to back, one `write` carries many lines; the engine flushes whenever it has
//! nothing else to do, and a batch never grows past [`BATCH`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Lines are written when this much is waiting, if not earlier.
pub const BATCH: usize = 64 * 1024;

/// A file that lines are appended to in batches.
pub struct Batched {
    path: PathBuf,
    /// Opened (for appending, created if missing) on the first write, if not given.
    file: Option<File>,
    pending: Vec<u8>,
}

impl Batched {
    /// Lines for `file`, already open for appending.
    pub fn to_file(path: PathBuf, file: File) -> Self {
        Batched {
            path,
            file: Some(file),
            pending: Vec::new(),
        }
    }

    /// Lines for the file at `path`, created when the first batch is written.
    pub fn created_on_first_line(path: PathBuf) -> Self {
        Batched {
            path,
            file: None,
            pending: Vec::new(),
        }
    }

    /// Where lines are gathered; call [`Batched::added`] after adding.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Lines were added: write them if the batch is full.
    pub fn added(&mut self) -> io::Result<()> {
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Write what is waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.pending),
            None => Ok(()),
        };
        self.pending.clear();
        written
    }
}

impl Drop for Batched {
    /// Lines still waiting go out now (a run that ends normally has flushed them already).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
