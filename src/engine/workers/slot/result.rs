//! The result of the item a worker is on, as its reply arrives: held in memory up to
//! [`HELD_RESULT`] bytes (and `max_result`), else written as it comes to its own file,
//! `outputs/N.result`, up to `max_result` bytes; what is beyond is counted and dropped.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::event::{AttemptKey, ItemResult, LostRecord};
use crate::worker::HELD_RESULT;

/// Where one result goes. Dropped before [`ResultSink::finish`] (the reply broke the
/// protocol, or the worker died writing it), its file is removed.
#[derive(Debug)]
pub(super) struct ResultSink {
    /// Relative to the run directory, as the records name it.
    name: String,
    path: PathBuf,
    /// Most bytes held in memory: past them, the file is used.
    hold: usize,
    cap: u64,
    file: FileState,
    total: u64,
    written: u64,
    finished: bool,
}

#[derive(Debug)]
enum FileState {
    Held(Vec<u8>),
    Open(File),
    /// It could not be created or written: the first error.
    Failed(std::io::Error),
}

impl ResultSink {
    /// The result of attempt `key`, saved under `run_dir` with at most `cap` bytes.
    pub(super) fn new(run_dir: &Path, key: AttemptKey, cap: u64) -> Self {
        let name = crate::record::result_name(key);
        ResultSink {
            path: run_dir.join(&name),
            name,
            hold: usize::try_from(cap).map_or(HELD_RESULT, |c| c.min(HELD_RESULT)),
            cap,
            file: FileState::Held(Vec::new()),
            total: 0,
            written: 0,
            finished: false,
        }
    }

    /// The next bytes of the result's JSON.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if let FileState::Held(held) = &mut self.file {
            if held.len() + bytes.len() <= self.hold {
                held.extend_from_slice(bytes);
                return;
            }
            let held = std::mem::take(held);
            self.file = File::create(&self.path).map_or_else(FileState::Failed, FileState::Open);
            self.write(&held);
        }
        self.write(bytes);
    }

    /// Write what fits under the cap.
    fn write(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.written);
        let keep = &bytes[..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        if keep.is_empty() {
            return;
        }
        if let FileState::Open(file) = &mut self.file
            && let Err(e) = file.write_all(keep)
        {
            self.file = FileState::Failed(e);
        }
        self.written += keep.len() as u64;
    }

    /// The result as the records hold it, and its file if that could not be written in
    /// full; an error if a result small enough to hold is not JSON.
    pub(super) fn finish(mut self) -> Result<(ItemResult, Option<LostRecord>), String> {
        self.finished = true;
        let saved = ItemResult::Saved {
            bytes: self.total,
            truncated: self.total > self.cap,
        };
        match std::mem::replace(&mut self.file, FileState::Held(Vec::new())) {
            FileState::Held(held) => {
                let text = String::from_utf8(held).map_err(|_| "its result is not UTF-8")?;
                serde_json::value::RawValue::from_string(text)
                    .map(|value| (ItemResult::Held(value), None))
                    .map_err(|e| format!("its result is not JSON ({e})"))
            }
            FileState::Open(_) => Ok((saved, None)),
            FileState::Failed(e) => Ok((saved, Some(LostRecord::new(&self.name, &e)))),
        }
    }
}

impl Drop for ResultSink {
    fn drop(&mut self) {
        if !self.finished && !matches!(self.file, FileState::Held(_)) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: AttemptKey = AttemptKey { seq: 7, attempt: 1 };

    fn outputs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("outputs")).expect("outputs");
        dir
    }

    #[test]
    fn a_small_result_is_held_and_leaves_no_file() {
        let dir = outputs();
        let mut sink = ResultSink::new(dir.path(), KEY, 1 << 20);
        sink.push(b"{\"a\":");
        sink.push(b" [1, 2]}");
        let Ok((ItemResult::Held(value), None)) = sink.finish() else {
            panic!("not held");
        };
        assert_eq!(value.get(), "{\"a\": [1, 2]}");
        assert!(!dir.path().join("outputs/7.result").exists());
        let mut sink = ResultSink::new(dir.path(), KEY, 1 << 20);
        sink.push(b"[1,");
        assert!(sink.finish().is_err(), "not JSON");
    }

    #[test]
    fn a_large_result_is_saved_and_capped() {
        let dir = outputs();
        let cap = HELD_RESULT as u64 + 10;
        let mut sink = ResultSink::new(dir.path(), KEY, cap);
        let piece = vec![b'x'; 1000];
        for _ in 0..100 {
            sink.push(&piece);
        }
        let Ok((ItemResult::Saved { bytes, truncated }, None)) = sink.finish() else {
            panic!("not saved");
        };
        assert_eq!((bytes, truncated), (100_000, true));
        let saved = std::fs::read(dir.path().join("outputs/7.result")).expect("saved");
        assert_eq!(saved.len() as u64, cap);
        // Under the cap, a result too large to hold is whole in its file.
        let mut sink = ResultSink::new(dir.path(), KEY, 1 << 20);
        sink.push(&vec![b'y'; HELD_RESULT + 1]);
        let Ok((ItemResult::Saved { truncated, .. }, None)) = sink.finish() else {
            panic!("not saved");
        };
        assert!(!truncated);
    }

    #[test]
    fn a_cap_below_what_is_held_saves_the_cut_result() {
        let dir = outputs();
        let mut sink = ResultSink::new(dir.path(), KEY, 4);
        sink.push(b"\"abcdef\"");
        let Ok((
            ItemResult::Saved {
                bytes: 8,
                truncated: true,
            },
            None,
        )) = sink.finish()
        else {
            panic!("not cut");
        };
        let saved = std::fs::read(dir.path().join("outputs/7.result")).expect("saved");
        assert_eq!(saved, b"\"abc");
    }

    #[test]
    fn an_unfinished_result_leaves_no_file() {
        let dir = outputs();
        let mut sink = ResultSink::new(dir.path(), KEY, 1 << 30);
        sink.push(&vec![b'1'; HELD_RESULT * 2]);
        assert!(dir.path().join("outputs/7.result").exists());
        drop(sink);
        assert!(!dir.path().join("outputs/7.result").exists());
    }
}
