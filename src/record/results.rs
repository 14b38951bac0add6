//! `results.jsonl` (persistent workers): one line per item as its final reply arrives,
//! `{"task": N, "ok": value}` or `{"task": N, "error": text}`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::event::{AttemptRecord, Outcome};

pub const FILE: &str = "results.jsonl";

/// Lines are gathered and written when the engine is idle or this much is waiting.
const BATCH: usize = 64 * 1024;

/// An open `results.jsonl`, created on the first line.
pub struct Results {
    path: std::path::PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
}

impl Results {
    pub fn new(run_dir: &Path) -> Self {
        Results {
            path: run_dir.join(FILE),
            file: None,
            pending: Vec::new(),
        }
    }

    /// Add the line of a final attempt that a worker answered (others have no result).
    pub fn append(&mut self, record: &AttemptRecord) -> io::Result<()> {
        let seq = record.key.seq;
        match (&record.result, &record.outcome) {
            (Some(value), _) => {
                write!(self.pending, "{{\"task\":{seq},\"ok\":{}}}", value.get())?;
            }
            (None, Outcome::Error { error }) => {
                write!(self.pending, "{{\"task\":{seq},\"error\":")?;
                serde_json::to_writer(&mut self.pending, error)?;
                self.pending.push(b'}');
            }
            (None, other) if record.pid != 0 || !other.is_success() => {
                // The worker died or was killed on the item: say how.
                write!(self.pending, "{{\"task\":{seq},\"error\":")?;
                serde_json::to_writer(&mut self.pending, &other.describe())?;
                self.pending.push(b'}');
            }
            _ => return Ok(()),
        }
        self.pending.push(b'\n');
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
        if let Some(file) = &mut self.file {
            file.write_all(&self.pending)?;
        }
        self.pending.clear();
        Ok(())
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
