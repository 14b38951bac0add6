//! Lines gathered in memory and appended to a file together: while finished tasks arrive
//! back to back, one `write` carries many lines; the engine flushes whenever it has
//! nothing else to do, and a batch never grows past [`BATCH`]. A batch that could not be
//! written in full (disk full) is dropped, cut back to the last whole line, so that later
//! lines start clean.

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

    /// Lines for the file at `path`, created (or opened for appending) now: while the
    /// descriptor can still be had.
    pub fn created_now(path: PathBuf) -> io::Result<Self> {
        let file = open_for_lines(&path)?;
        Ok(Batched::to_file(path, file))
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

    /// Nothing is in the file (yet, or after a batch written in part was cut off).
    pub fn nothing_written(&self) -> bool {
        self.file
            .as_ref()
            .is_none_or(|f| f.metadata().is_ok_and(|m| m.len() == 0))
    }

    /// Write what is waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(open_for_lines(&self.path)?);
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.pending).inspect_err(|_| {
                // The part of the batch that went out ends mid-line.
                let _ = file
                    .metadata()
                    .and_then(|m| whole_lines(file, m.len()))
                    .and_then(|whole| file.set_len(whole));
            }),
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

/// `path` opened for appending lines, created if missing.
fn open_for_lines(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        // To cut a batch written in part back to its whole lines.
        .read(true)
        .open(path)
}

/// How many of the first `len` bytes of `file` are whole lines: up to its last newline.
pub(super) fn whole_lines(file: &std::fs::File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, part, start)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}
