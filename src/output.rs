//! A task's output: a bounded tail in memory, readable live, and a capped file on disk.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::event::{AttemptKey, LostRecord, Stream};

/// Bytes of each stream kept in memory per attempt.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Default cap of each saved stream.
pub const DEFAULT_FILE_CAP: u64 = 100 * 1024 * 1024;

/// The last [`TAIL_BYTES`] of a stream, shared between the reader and the faces.
#[derive(Debug, Default)]
pub struct Tail {
    inner: Mutex<TailBuf>,
}

#[derive(Debug, Default)]
struct TailBuf {
    bytes: VecDeque<u8>,
    total: u64,
}

impl Tail {
    /// Append `chunk`, forgetting the oldest bytes beyond the bound.
    pub fn push(&self, chunk: &[u8]) {
        let mut tail = self.lock();
        tail.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (tail.bytes.len() + chunk.len()).saturating_sub(TAIL_BYTES);
        tail.bytes.drain(..overflow);
        tail.bytes.extend(chunk);
    }

    /// Total bytes ever pushed.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// The kept bytes, decoded lossily.
    pub fn text(&self) -> String {
        let tail = self.lock();
        let (a, b) = tail.bytes.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The last `n` non-empty lines, decoded lossily, at most `max_bytes` of them (the
    /// end is kept).
    pub fn last_lines(&self, n: usize, max_bytes: usize) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        let mut cut = tail.len().saturating_sub(max_bytes);
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail[cut..].to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TailBuf> {
        // A poisoned tail still holds valid bytes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes one stream of one attempt: to its tail, and to its file up to the cap.
///
/// The file is created when the first byte arrives, so a silent task leaves no empty files
/// and costs no file creation.
#[derive(Debug)]
pub struct Capture {
    tail: Arc<Tail>,
    file: FileState,
    place: Place,
    written: u64,
    cap: u64,
}

/// Where a capture's file goes, worked out when the first byte arrives (most tasks of a
/// large run print nothing, and then no path is ever built).
#[derive(Debug)]
enum Place {
    Path(PathBuf),
    Output {
        run_dir: Arc<Path>,
        key: AttemptKey,
        stream: Stream,
    },
}

#[derive(Debug)]
enum FileState {
    NotYet,
    Open(File),
    /// It could not be created or written: the first error. The tail still holds the
    /// output.
    Failed(std::io::Error),
}

/// What a capture saw and saved, once finished.
#[derive(Debug)]
pub struct Saved {
    /// Bytes the task wrote (including any beyond the cap).
    pub total: u64,
    /// The file could not be written in full.
    pub lost: Option<LostRecord>,
}

impl Capture {
    /// Capture into the file at `path`, created on the first byte.
    pub fn new(path: &Path, cap: u64) -> Self {
        Self::to(Place::Path(path.to_path_buf()), cap)
    }

    /// Capture `stream` of attempt `key` into its file under `run_dir` (see
    /// [`crate::record::output_path`]), created on the first byte.
    pub fn of_attempt(run_dir: &Arc<Path>, key: AttemptKey, stream: Stream, cap: u64) -> Self {
        Self::to(
            Place::Output {
                run_dir: Arc::clone(run_dir),
                key,
                stream,
            },
            cap,
        )
    }

    fn to(place: Place, cap: u64) -> Self {
        Capture {
            tail: Arc::new(Tail::default()),
            file: FileState::NotYet,
            place,
            written: 0,
            cap,
        }
    }

    pub fn tail(&self) -> Arc<Tail> {
        Arc::clone(&self.tail)
    }

    /// The file as records name it: under the run directory (`outputs/7.out`), or whole.
    fn name(&self) -> String {
        match &self.place {
            Place::Path(path) => path.display().to_string(),
            Place::Output { key, stream, .. } => crate::record::output_name(*key, *stream),
        }
    }

    /// The file the output goes to.
    pub fn path(&self) -> PathBuf {
        match &self.place {
            Place::Path(path) => path.clone(),
            Place::Output {
                run_dir,
                key,
                stream,
            } => crate::record::output_path(run_dir, *key, *stream),
        }
    }

    /// Record a chunk the task wrote.
    pub fn push(&mut self, chunk: &[u8]) {
        self.tail.push(chunk);
        let room = self.cap.saturating_sub(self.written);
        let keep = &chunk[..chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        if keep.is_empty() {
            return;
        }
        if let FileState::NotYet = self.file {
            self.file = File::create(self.path()).map_or_else(FileState::Failed, FileState::Open);
        }
        if let FileState::Open(file) = &mut self.file
            && let Err(e) = file.write_all(keep)
        {
            self.file = FileState::Failed(e);
        }
        self.written += keep.len() as u64;
    }

    /// Close the file, noting at its end how much was cut.
    pub fn finish(mut self) -> Saved {
        let total = self.tail.total();
        if total > self.written
            && let FileState::Open(file) = &mut self.file
        {
            let note = format!(
                "\n[poolscope: output truncated: the first {} bytes were saved, {} more were dropped]\n",
                self.written,
                total - self.written
            );
            if let Err(e) = file.write_all(note.as_bytes()) {
                self.file = FileState::Failed(e);
            }
        }
        let lost = match &self.file {
            FileState::Failed(e) => Some(LostRecord::new(self.name(), e)),
            _ => None,
        };
        Saved { total, lost }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let tail = Tail::default();
        tail.push(&vec![b'a'; TAIL_BYTES]);
        tail.push(b"xyz");
        let text = tail.text();
        assert_eq!(text.len(), TAIL_BYTES);
        assert!(text.ends_with("axyz"));
        assert_eq!(tail.total(), TAIL_BYTES as u64 + 3);
    }

    #[test]
    fn last_lines_skips_blank_ones() {
        let tail = Tail::default();
        tail.push(b"one\ntwo\n\nthree\n\n");
        assert_eq!(tail.last_lines(2, 100), "two\nthree");
        assert_eq!(tail.last_lines(2, 7), "o\nthree");
    }

    #[test]
    fn file_is_capped_with_a_note() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.out");
        let mut cap = Capture::new(&path, 10);
        cap.push(b"0123456789abcdef");
        let saved = cap.finish();
        assert_eq!(saved.total, 16);
        assert!(saved.lost.is_none());
        let saved = std::fs::read_to_string(&path)?;
        assert!(saved.starts_with("0123456789\n[poolscope: output truncated"));
        assert!(saved.contains("6 more were dropped"));
        Ok(())
    }

    #[test]
    fn silent_stream_leaves_no_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("quiet.err");
        let cap = Capture::new(&path, 10);
        assert_eq!(cap.finish().total, 0);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn a_file_that_cannot_be_written_is_lost_and_says_why() {
        // /dev/full takes no byte: every write fails with ENOSPC.
        let mut cap = Capture::new(Path::new("/dev/full"), 100);
        cap.push(b"abc");
        let saved = cap.finish();
        assert_eq!(saved.total, 3, "the tail still counts the bytes");
        let lost = saved.lost.expect("lost");
        assert_eq!(lost.file, "/dev/full");
        assert!(lost.error.contains("No space left"), "{}", lost.error);
    }
}
