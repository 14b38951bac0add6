//! What a run leaves on disk (DESIGN §5): the run directory with `joblog.tsv`,
//! `trace.json`, `outputs/`, `results.jsonl` (persistent workers) and `summary.json`.

mod batch;
pub mod history;
pub mod joblog;
pub mod results;
pub mod rundir;
pub mod summary;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{AttemptKey, Event, Stream};
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
    errors: Vec<String>,
}

impl Recorder {
    /// Open the records of a run in `run_dir` (which exists), appending to its joblog.
    pub fn open(run_dir: &Path, tasks: Arc<Vec<Arc<Task>>>) -> std::io::Result<Self> {
        Ok(Recorder {
            joblog: joblog::Joblog::open(&run_dir.join(joblog::FILE))?,
            results: results::Results::new(run_dir),
            run_dir: run_dir.to_path_buf(),
            tasks,
            state: RunState::new(),
            errors: Vec::new(),
        })
    }

    /// Record `event`: a joblog line per finished task, and the model for the rest.
    pub fn observe(&mut self, event: &Event) {
        self.state.apply(event);
        if let Event::AttemptFinished(record) = event
            && record.is_final
        {
            let command = self
                .tasks
                .get(record.key.seq - 1)
                .map(|t| t.command_text(Some(record.slot)))
                .unwrap_or_default();
            if let Err(e) = self.joblog.append(record, self.start_epoch(), &command) {
                self.errors
                    .push(format!("cannot append to the joblog: {e}"));
            }
            if self.state.info.is_some()
                && self
                    .tasks
                    .get(record.key.seq - 1)
                    .is_some_and(|t| t.item().is_some())
                && let Err(e) = self.results.append(record)
            {
                self.errors
                    .push(format!("cannot append to {}: {e}", results::FILE));
            }
        }
    }

    /// Write the lines gathered for the joblog and `results.jsonl`; called whenever the
    /// engine has nothing else to do.
    pub fn flush(&mut self) {
        if let Err(e) = self.joblog.flush() {
            self.errors
                .push(format!("cannot append to the joblog: {e}"));
        }
        if let Err(e) = self.results.flush() {
            self.errors
                .push(format!("cannot append to {}: {e}", results::FILE));
        }
    }

    fn start_epoch(&self) -> f64 {
        self.state
            .info
            .as_ref()
            .map_or(0.0, |i| epoch::seconds(i.started_at))
    }

    /// Write `trace.json` and `summary.json`. Returns every problem met while recording.
    pub fn finish(&mut self) -> Vec<String> {
        self.joblog.header_if_none();
        self.flush();
        if let Err(e) = rundir::make_outputs(&self.run_dir) {
            self.errors
                .push(format!("cannot create {}: {e}", rundir::OUTPUTS));
        }
        let (state, tasks, run_dir) = (&self.state, &self.tasks, &self.run_dir);
        let large = tasks.len() >= SIDE_BY_SIDE_FROM;
        let write_trace = || write_json(&run_dir.join(trace::FILE), &trace::render(state), large);
        let write_summary = || {
            write_json(
                &run_dir.join(summary::FILE),
                &Summary::of(state, tasks),
                large,
            )
        };
        // The two files are independent: a large run writes them side by side; for a small
        // one, starting a thread would cost more than it saves.
        let (trace_written, summary_written) = if !large {
            (write_trace(), write_summary())
        } else {
            std::thread::scope(|scope| {
                let trace = scope.spawn(write_trace);
                let summary = write_summary();
                let trace = trace
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the trace writer panicked")));
                (trace, summary)
            })
        };
        if let Err(e) = trace_written {
            self.errors
                .push(format!("cannot write {}: {e}", trace::FILE));
        }
        if let Err(e) = summary_written {
            self.errors
                .push(format!("cannot write {}: {e}", summary::FILE));
        }
        std::mem::take(&mut self.errors)
    }
}

/// From this many tasks on, trace.json and summary.json are written on two threads.
const SIDE_BY_SIDE_FROM: usize = 1000;

/// Where an attempt's stream is saved: `outputs/7.out`, `outputs/7.attempt2.err`.
pub fn output_path(run_dir: &Path, key: AttemptKey, stream: Stream) -> PathBuf {
    let stem = if key.attempt == 1 {
        key.seq.to_string()
    } else {
        format!("{}.attempt{}", key.seq, key.attempt)
    };
    let ext = match stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    };
    run_dir.join(rundir::OUTPUTS).join(format!("{stem}.{ext}"))
}

fn write_json(path: &Path, value: &impl serde::Serialize, large: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    if large {
        // Large records (100,000s of tasks) go out in few, large writes.
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut w, value)?;
        std::io::Write::flush(&mut w)?;
    } else {
        // A small run's records are a few KiB: one buffer of their size, one write.
        std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    }
    std::fs::rename(tmp, path)
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
