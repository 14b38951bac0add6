//! `results.jsonl` (persistent workers): one line per item as its final reply arrives,
//! `{"task": N, "ok": value}` or `{"task": N, "error": text}`; a result too large to hold
//! is in a file of its own, and its line says where:
//! `{"task": N, "result_file": "outputs/N.result", "result_bytes": B, "result_truncated": false}`.

use std::io::{self, Write};
use std::path::Path;

use super::batch::Batched;
use crate::event::{AttemptRecord, ItemResult, Outcome};

pub const FILE: &str = "results.jsonl";

/// An open `results.jsonl`.
pub struct Results {
    out: Batched,
}

impl Results {
    /// Created now for a run of items (before its workers take the descriptors there are),
    /// else on the first line.
    pub fn new(run_dir: &Path, items: bool) -> io::Result<Self> {
        let path = run_dir.join(FILE);
        let out = if items {
            Batched::created_now(path)?
        } else {
            Batched::created_on_first_line(path)
        };
        Ok(Results { out })
    }

    /// Add the line of a final attempt that a worker answered (others have no result).
    pub fn append(&mut self, record: &AttemptRecord) -> io::Result<()> {
        let seq = record.key.seq;
        let line = self.out.buffer();
        match (&record.result, &record.outcome) {
            (Some(ItemResult::Held(value)), _) => {
                write!(line, "{{\"task\":{seq},\"ok\":{}}}", value.get())?;
            }
            (Some(ItemResult::Saved { bytes, truncated }), _) => {
                let file = super::result_name(record.key);
                write!(
                    line,
                    "{{\"task\":{seq},\"result_file\":\"{file}\",\"result_bytes\":{bytes},\"result_truncated\":{truncated}}}"
                )?;
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
