//! `results.jsonl` (persistent workers): one line per item as its final reply arrives,
//! `{"task": N, "ok": value}` or `{"task": N, "error": text}`.

use std::io::{self, Write};
use std::path::Path;

use super::batch::Batched;
use crate::event::{AttemptRecord, Outcome};

pub const FILE: &str = "results.jsonl";

/// An open `results.jsonl`, created on the first line.
pub struct Results {
    out: Batched,
}

impl Results {
    pub fn new(run_dir: &Path) -> Self {
        Results {
            out: Batched::created_on_first_line(run_dir.join(FILE)),
        }
    }

    /// Add the line of a final attempt that a worker answered (others have no result).
    pub fn append(&mut self, record: &AttemptRecord) -> io::Result<()> {
        let seq = record.key.seq;
        let line = self.out.buffer();
        match (&record.result, &record.outcome) {
            (Some(value), _) => {
                write!(line, "{{\"task\":{seq},\"ok\":{}}}", value.get())?;
            }
            (None, Outcome::Error { error }) => {
                write!(line, "{{\"task\":{seq},\"error\":")?;
                serde_json::to_writer(&mut *line, error)?;
                line.push(b'}');
            }
            (None, other) if record.pid != 0 || !other.is_success() => {
                // The worker died or was killed on the item: say how.
                write!(line, "{{\"task\":{seq},\"error\":")?;
                serde_json::to_writer(&mut *line, &other.describe())?;
                line.push(b'}');
            }
            _ => return Ok(()),
        }
        line.push(b'\n');
        self.out.added()
    }

    /// Write what is waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
