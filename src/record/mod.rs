//! What a run leaves on disk (DESIGN §5): the run directory with `joblog.tsv`,
//! `trace.json`, `outputs/`, `results.jsonl` (persistent workers) and `summary.json`.

mod batch;
pub mod history;
pub mod joblog;
pub mod lock;
pub mod results;
pub mod resume;
pub mod rundir;
pub mod summary;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{AttemptKey, Event, LostRecord, Stream};
use crate::state::RunState;
use crate::task::Task;

pub use summary::Summary;

/// Writes a run's records as its events go by.
pub struct Recorder {
    run_dir: PathBuf,
    tasks: Arc<Vec<Arc<Task>>>,
    joblog: joblog::Joblog,
    results: results::Results,
    state: RunState,
    /// Its own files that could not be written in full, each once.
    lost: Vec<LostRecord>,
}

impl Recorder {
    /// Open the records of a run in `run_dir` (which exists), appending to its joblog.
    pub fn open(run_dir: &Path, tasks: Arc<Vec<Arc<Task>>>) -> std::io::Result<Self> {
        Ok(Recorder {
            joblog: joblog::Joblog::open(&run_dir.join(joblog::FILE))?,
            results: results::Results::new(run_dir, tasks.iter().any(|t| t.item().is_some()))?,
            run_dir: run_dir.to_path_buf(),
            tasks,
            state: RunState::new(),
            lost: Vec::new(),
        })
    }

    /// `file` could not be written in full: the first time, note it in the model (and so in
    /// `summary.json`) and keep it for the faces.
    fn lose(&mut self, file: &str, error: &std::io::Error) {
        if self.lost.iter().any(|l| l.file == file) {
            return;
        }
        let lost = LostRecord::new(file, error);
        self.state.apply(&Event::RecordProblem(lost.clone()));
        self.lost.push(lost);
    }

    /// Record `event`: a joblog line per finished task, and the model for the rest.
    pub fn observe(&mut self, event: &Event) {
        self.state.apply(event);
        let Event::AttemptFinished(record) = event else {
            return;
        };
        if !record.is_final {
            return;
        }
        let command = self
            .tasks
            .get(record.key.seq - 1)
            .map(|t| t.command_text(Some(record.slot)))
            .unwrap_or_default();
        if let Err(e) = self.joblog.append(record, self.start_epoch(), &command) {
            self.lose(joblog::FILE, &e);
        }
        if self.state.info.is_some()
            && self
                .tasks
                .get(record.key.seq - 1)
                .is_some_and(|t| t.item().is_some())
            && let Err(e) = self.results.append(record)
        {
            self.lose(results::FILE, &e);
        }
    }

    /// Write the lines gathered for the joblog and `results.jsonl`; called whenever the
    /// engine has nothing else to do.
    pub fn flush(&mut self) {
        if let Err(e) = self.joblog.flush() {
            self.lose(joblog::FILE, &e);
        }
        if let Err(e) = self.results.flush() {
            self.lose(results::FILE, &e);
        }
    }

    fn start_epoch(&self) -> f64 {
        self.state
            .info
            .as_ref()
            .map_or(0.0, |i| epoch::seconds(i.started_at))
    }

    /// Write `trace.json`, then `summary.json` (which lists the records written only in
    /// part, `trace.json` included).
    pub fn finish(&mut self) -> Finished {
        self.joblog.header_if_none();
        self.flush();
        let trace_path = self.run_dir.join(trace::FILE);
        if let Err(e) = write_streamed(&trace_path, &trace::render(&self.state)) {
            self.lose(trace::FILE, &e);
        }
        let (state, tasks) = (&self.state, &self.tasks);
        let summary_path = self.run_dir.join(summary::FILE);
        let summary = Summary::of(state, tasks);
        let mut rendered = None;
        let summary_written = if tasks.len() < HELD_WHOLE_BELOW {
            // Kept whole for the faces (`--json` prints it).
            match serde_json::to_string(&summary) {
                Ok(json) => {
                    let written = write_through_temporary(&summary_path, |mut file| {
                        std::io::Write::write_all(&mut file, json.as_bytes())
                    });
                    rendered = Some(Arc::from(json));
                    written
                }
                Err(e) => Err(e.into()),
            }
        } else {
            write_streamed(&summary_path, &summary)
        };
        if let Err(e) = summary_written {
            self.lose(summary::FILE, &e);
        }
        Finished {
            problems: std::mem::take(&mut self.lost),
            summary: rendered,
        }
    }
}

/// What is left of a run's records once they are written.
pub struct Finished {
    /// The files of the recorder's own that could not be written in full (an attempt's
    /// output files are in its record).
    pub problems: Vec<LostRecord>,
    /// `summary.json` as rendered, for a run of fewer than [`HELD_WHOLE_BELOW`] tasks.
    pub summary: Option<Arc<str>>,
}

/// Below this many tasks, `summary.json` is rendered whole in memory and kept for the
/// faces; from it on, it is written as it is rendered.
pub const HELD_WHOLE_BELOW: usize = 1000;

/// Where an attempt's stream is saved: `outputs/7.out`, `outputs/7.attempt2.err`.
pub fn output_path(run_dir: &Path, key: AttemptKey, stream: Stream) -> PathBuf {
    run_dir.join(output_name(key, stream))
}

/// [`output_path`] relative to the run directory.
pub fn output_name(key: AttemptKey, stream: Stream) -> String {
    let ext = match stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    };
    attempt_file(key, ext)
}

/// Where a persistent worker's result too large to hold is saved, relative to the run
/// directory: `outputs/7.result`, `outputs/7.attempt2.result`.
pub fn result_name(key: AttemptKey) -> String {
    attempt_file(key, "result")
}

/// `outputs/7.EXT`, or `outputs/7.attempt2.EXT` for a retry.
fn attempt_file(key: AttemptKey, ext: &str) -> String {
    let stem = if key.attempt == 1 {
        key.seq.to_string()
    } else {
        format!("{}.attempt{}", key.seq, key.attempt)
    };
    format!("{}/{stem}.{ext}", rundir::OUTPUTS)
}

/// Write `path` through a temporary file of its own that `fill` writes, then renamed into
/// place, so that `path` is never seen half written.
fn write_through_temporary(
    path: &Path,
    fill: impl FnOnce(std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary(path);
    let written = std::fs::File::create(&tmp)
        .and_then(fill)
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Write `value` as JSON to `path` as it is rendered, in few, large writes (records of
/// 100,000s of tasks).
fn write_streamed(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    write_through_temporary(path, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut w, value)?;
        std::io::Write::flush(&mut w)
    })
}

/// The temporary file `path` is written into before it is renamed into place: named for
/// this process and a counter, so that no two writers share one.
fn temporary(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let n = WRITTEN.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// `SystemTime` as seconds since the Unix epoch.
pub mod epoch {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::Serializer;

    pub fn seconds(t: SystemTime) -> f64 {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(seconds(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("run directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn records_are_written_at_the_end_with_no_temporary_file_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        rundir::create(dir.path()).expect("run directory");
        let mut recorder = Recorder::open(dir.path(), Arc::new(Vec::new())).expect("open");
        let finished = recorder.finish();
        assert!(finished.problems.is_empty(), "{:?}", finished.problems);
        assert_eq!(
            names(dir.path()),
            ["joblog.tsv", "outputs", "summary.json", "trace.json"]
        );
    }
}
