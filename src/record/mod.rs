//! What a run leaves on disk (DESIGN §5): the run directory with `joblog.tsv`,
//! `trace.json`, `outputs/`, `results.jsonl` (persistent workers) and `summary.json`.

mod ahead;
mod batch;
pub mod history;
pub mod joblog;
pub mod results;
pub mod resume;
pub mod rundir;
pub mod summary;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Made ahead of the run's end by [`Recorder::prepare`]: `outputs/`, and the temporary
    /// files `trace.json` and `summary.json` are written into.
    prepared: Prepared,
    /// A small run's records, rendered as it goes on.
    ahead: ahead::Ahead,
    /// When the last attempt finished: what is rendered ahead waits for a quiet moment.
    last_finished: Option<Instant>,
}

/// How long after an attempt's end a small run's records are rendered ahead, at the
/// engine's next idle moment: tasks end in waves (five `sleep 1` on five slots end within
/// a few milliseconds), and the CPU that rendering takes belongs, during a wave, to the
/// tasks starting next.
const QUIET: Duration = Duration::from_millis(10);

/// What [`Recorder::prepare`] made.
#[derive(Default)]
struct Prepared {
    outputs: bool,
    trace: Option<std::fs::File>,
    summary: Option<std::fs::File>,
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
            prepared: Prepared::default(),
            ahead: ahead::Ahead::default(),
            last_finished: None,
        })
    }

    /// Make, while the run goes on, what its end would otherwise have to make first: the
    /// `outputs/` folder and the two temporary files that become `trace.json` and
    /// `summary.json`. Creating a file or a folder costs this filesystem tens of
    /// microseconds (more after an idle spell), and a run's end is waited for.
    ///
    /// A run that is killed before its end leaves the two temporary files behind, empty;
    /// the next run into the same directory (`--resume`) truncates them.
    pub fn prepare(&mut self) {
        // What fails here is tried again, and reported, at the end.
        self.prepared.outputs = rundir::make_outputs(&self.run_dir).is_ok();
        self.prepared.trace =
            std::fs::File::create(temporary(&self.run_dir.join(trace::FILE))).ok();
        self.prepared.summary =
            std::fs::File::create(temporary(&self.run_dir.join(summary::FILE))).ok();
    }

    /// Record `event`: a joblog line per finished task, and the model for the rest.
    pub fn observe(&mut self, event: &Event) {
        self.state.apply(event);
        let Event::AttemptFinished(record) = event else {
            return;
        };
        self.last_finished = Some(Instant::now());
        if !record.is_final {
            return;
        }
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

    /// Write the lines gathered for the joblog and `results.jsonl`, and, in a quiet
    /// moment, render a small run's records of what finished; called whenever the engine
    /// has nothing else to do.
    pub fn flush(&mut self) {
        if self.tasks.len() < HELD_WHOLE_BELOW
            && self.last_finished.is_some_and(|at| at.elapsed() >= QUIET)
        {
            self.ahead.catch_up(&self.state, &self.tasks);
            self.last_finished = None;
        }
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

    /// Write `trace.json` and `summary.json`.
    pub fn finish(&mut self) -> Finished {
        self.joblog.header_if_none();
        self.flush();
        if !self.prepared.outputs
            && let Err(e) = rundir::make_outputs(&self.run_dir)
        {
            self.errors
                .push(format!("cannot create {}: {e}", rundir::OUTPUTS));
        }
        let (state, tasks, run_dir) = (&self.state, &self.tasks, &self.run_dir);
        let (trace_file, summary_file) = (self.prepared.trace.take(), self.prepared.summary.take());
        let trace_path = run_dir.join(trace::FILE);
        let summary_path = run_dir.join(summary::FILE);
        let mut rendered = None;
        // A small run's records are a few KiB: each is rendered into one buffer and
        // written at once, and the summary is kept for the faces. A large run's two files
        // are independent: they are written side by side as they are rendered.
        let (trace_written, summary_written) = if tasks.len() < HELD_WHOLE_BELOW {
            let trace = self
                .ahead
                .trace(state)
                .map_err(std::io::Error::from)
                .and_then(|bytes| write_whole(&trace_path, trace_file, &bytes));
            let summary = match self.ahead.summary(state, tasks) {
                Ok(json) => {
                    let written = write_whole(&summary_path, summary_file, json.as_bytes());
                    rendered = Some(Arc::from(json));
                    written
                }
                Err(e) => Err(e.into()),
            };
            (trace, summary)
        } else {
            let write_trace = || write_streamed(&trace_path, trace_file, &trace::render(state));
            let write_summary =
                || write_streamed(&summary_path, summary_file, &Summary::of(state, tasks));
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
        Finished {
            problems: std::mem::take(&mut self.errors),
            summary: rendered,
        }
    }
}

/// What is left of a run's records once they are written.
pub struct Finished {
    /// Every problem met while recording.
    pub problems: Vec<String>,
    /// `summary.json` as rendered, for a run of fewer than [`HELD_WHOLE_BELOW`] tasks.
    pub summary: Option<Arc<str>>,
}

/// Below this many tasks, `trace.json` and `summary.json` are each held whole in memory
/// (most of them rendered ahead, in the run's quiet moments), then written at once; from
/// it on, they are written on two threads as they are rendered at the end.
pub const HELD_WHOLE_BELOW: usize = 1000;

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

/// Write `path` through its temporary file (`file`, if it was created ahead): `fill`
/// writes it, then it is renamed into place, so that `path` is never seen half written.
fn write_through_temporary(
    path: &Path,
    file: Option<std::fs::File>,
    fill: impl FnOnce(std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary(path);
    let file = match file {
        Some(file) => file,
        None => std::fs::File::create(&tmp)?,
    };
    fill(file)?;
    std::fs::rename(tmp, path)
}

/// Write `bytes` to `path`, in one write.
fn write_whole(path: &Path, file: Option<std::fs::File>, bytes: &[u8]) -> std::io::Result<()> {
    write_through_temporary(path, file, |file| {
        std::io::Write::write_all(&mut &file, bytes)
    })
}

/// Write `value` as JSON to `path` as it is rendered, in few, large writes (records of
/// 100,000s of tasks).
fn write_streamed(
    path: &Path,
    file: Option<std::fs::File>,
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    write_through_temporary(path, file, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut w, value)?;
        std::io::Write::flush(&mut w)
    })
}

/// The temporary file `path` is written into before it is renamed into place.
fn temporary(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
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
    fn prepared_files_become_the_records_at_the_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut recorder = Recorder::open(dir.path(), Arc::new(Vec::new())).expect("open");
        recorder.prepare();
        assert_eq!(
            names(dir.path()),
            ["outputs", "summary.json.tmp", "trace.json.tmp"]
        );
        let finished = recorder.finish();
        assert!(finished.problems.is_empty(), "{:?}", finished.problems);
        assert_eq!(
            names(dir.path()),
            ["joblog.tsv", "outputs", "summary.json", "trace.json"]
        );
        let written = std::fs::read_to_string(dir.path().join(summary::FILE)).expect("summary");
        assert_eq!(finished.summary.as_deref(), Some(written.as_str()));
        let trace = std::fs::read_to_string(dir.path().join(trace::FILE)).expect("trace");
        let trace: serde_json::Value = serde_json::from_str(&trace).expect("trace is JSON");
        assert!(trace["traceEvents"].is_array());
    }

    #[test]
    fn records_are_written_without_preparing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut recorder = Recorder::open(dir.path(), Arc::new(Vec::new())).expect("open");
        let finished = recorder.finish();
        assert!(finished.problems.is_empty(), "{:?}", finished.problems);
        assert_eq!(
            names(dir.path()),
            ["joblog.tsv", "outputs", "summary.json", "trace.json"]
        );
    }

    /// A run of three tasks: the second fails once and is retried, the third fails; a
    /// utilization sample between them.
    fn events(tasks: &[Arc<Task>], dir: &Path) -> Vec<Event> {
        use std::time::{Duration, SystemTime};

        use crate::config::PoolConfig;
        use crate::event::{AttemptRecord, LiveOutput, Outcome, RunInfo, TaskInfo};

        let ms = Duration::from_millis;
        let info = RunInfo {
            name: "ahead".into(),
            run_dir: dir.to_path_buf(),
            config: PoolConfig::default(),
            cores: 2,
            started_at: SystemTime::UNIX_EPOCH,
            tasks: tasks.iter().map(|t| TaskInfo::of(t)).collect(),
        };
        let started = |seq, attempt, slot, at| Event::AttemptStarted {
            key: AttemptKey { seq, attempt },
            slot,
            pid: 100 + seq as u32,
            at: ms(at),
            output: LiveOutput {
                stdout: Arc::default(),
                stderr: Arc::default(),
            },
        };
        let finished = |seq, attempt, slot, (from, to), code, is_final| {
            let key = AttemptKey { seq, attempt };
            Event::AttemptFinished(Arc::new(AttemptRecord {
                pid: 100 + seq as u32,
                started: ms(from),
                ended: ms(to),
                outcome: Outcome::Exited { code },
                stderr_tail: "it \"broke\"\n".into(),
                cores: vec![slot - 1],
                is_final,
                ..AttemptRecord::not_started(key, slot, ms(from), String::new())
            }))
        };
        vec![
            Event::RunStarted(Arc::new(info)),
            started(1, 1, 1, 0),
            started(2, 1, 2, 1),
            finished(2, 1, 2, (1, 30), 4, false),
            started(2, 2, 2, 31),
            Event::CoreUsage {
                at: ms(50),
                usage: vec![12.5, 99.0],
            },
            finished(1, 1, 1, (0, 60), 0, true),
            started(3, 1, 1, 61),
            finished(2, 2, 2, (31, 70), 0, true),
            finished(3, 1, 1, (61, 80), 3, true),
            Event::RunFinished {
                at: ms(81),
                interrupted: false,
                self_cpu: ms(2),
            },
        ]
    }

    #[test]
    fn records_rendered_ahead_are_the_records_rendered_whole() {
        let tasks_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            tasks_dir.path().join("poolscope.toml"),
            "[each]\nrange = [1, 3]\nsh = \"echo 'task {}'; exit 0\"\n",
        )
        .expect("manifest");
        let loaded = crate::taskdir::load(tasks_dir.path()).expect("task directory");
        let tasks: Arc<Vec<Arc<Task>>> = Arc::new(loaded.tasks.clone());
        let events = events(&tasks, tasks_dir.path());
        // Rendered ahead after every event, after a few, and only at the end.
        for every in [1, 3, events.len()] {
            let run = tempfile::tempdir().expect("temp dir");
            let mut recorder = Recorder::open(run.path(), Arc::clone(&tasks)).expect("open");
            for (i, event) in events.iter().enumerate() {
                recorder.observe(event);
                if (i + 1) % every == 0 {
                    recorder.ahead.catch_up(&recorder.state, &tasks);
                }
            }
            let finished = recorder.finish();
            assert!(finished.problems.is_empty(), "{:?}", finished.problems);
            let trace = std::fs::read(run.path().join(trace::FILE)).expect("trace");
            let whole = serde_json::to_vec(&trace::render(&recorder.state)).expect("render");
            assert_eq!(
                String::from_utf8_lossy(&trace),
                String::from_utf8_lossy(&whole),
                "trace, rendered ahead every {every} events"
            );
            let summary = std::fs::read_to_string(run.path().join(summary::FILE)).expect("summary");
            let whole =
                serde_json::to_string(&Summary::of(&recorder.state, &tasks)).expect("render");
            assert_eq!(
                summary, whole,
                "summary, rendered ahead every {every} events"
            );
            let parsed: serde_json::Value = serde_json::from_str(&summary).expect("JSON");
            assert_eq!(parsed["tasks"].as_array().map(Vec::len), Some(3));
            assert_eq!(parsed["tasks"][2]["exit_code"], 3);
        }
    }
}
