//! What the engine tells its faces, and what they may tell it.
//!
//! Times are offsets from the run's start ([`RunInfo::started_at`] is that instant on the
//! wall clock), so a recorded stream folds the same way every time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::PoolConfig;
use crate::output::Tail;

/// One attempt of one task: task number (1-based) and attempt number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AttemptKey {
    pub seq: usize,
    pub attempt: u32,
}

/// A task as the faces list it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInfo {
    pub seq: usize,
    pub name: String,
}

impl TaskInfo {
    /// How the faces list `task`.
    pub fn of(task: &crate::task::Task) -> Self {
        TaskInfo {
            seq: task.seq,
            name: task.name.clone(),
        }
    }
}

/// What a run is, sent once at its start.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub name: String,
    pub run_dir: PathBuf,
    pub config: PoolConfig,
    pub cores: usize,
    #[serde(with = "crate::record::epoch")]
    pub started_at: SystemTime,
    pub tasks: Vec<TaskInfo>,
    /// How the run's processes are cleaned up should poolscope die.
    pub cleanup: CleanupInfo,
}

/// Whether tasks run in a PID namespace that ends with poolscope (see `guard`), and if
/// not, the sentence that says so.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanupInfo {
    pub pid_namespace: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    /// The process exited with this code (0 is success).
    Exited { code: i32 },
    /// The process was killed by this signal, not by poolscope.
    Signaled { signal: i32 },
    /// poolscope stopped it when its time limit ran out.
    TimedOut,
    /// poolscope killed it because the run was stopped or halted.
    Cancelled,
    /// The command could not be started; the OS error.
    NotStarted { error: String },
    /// A persistent worker answered the item with an error (e.g. a traceback), or broke
    /// the protocol while on it.
    Error { error: String },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Exited { code: 0 })
    }

    /// Whether the attempt failed: neither succeeded nor was cancelled by poolscope (a
    /// cancelled attempt is the run's stop, not the task's error).
    pub fn is_failure(&self) -> bool {
        !self.is_success() && *self != Outcome::Cancelled
    }

    /// The joblog's Exitval and Signal columns, as GNU parallel writes them.
    pub fn joblog_columns(&self, signal: Option<i32>) -> (i32, i32) {
        match self {
            Outcome::Exited { code } => (*code, 0),
            Outcome::Signaled { signal } => (0, *signal),
            Outcome::TimedOut => (-1, 15),
            Outcome::Cancelled => (0, signal.unwrap_or(15)),
            Outcome::NotStarted { .. } => (127, 0),
            Outcome::Error { .. } => (1, 0),
        }
    }

    /// One or two words for a column: `ok`, `exit 3`, `SIGSEGV`, `timeout`.
    pub fn describe_short(&self) -> String {
        match self {
            Outcome::Exited { code: 0 } => "ok".to_string(),
            Outcome::Exited { code } => format!("exit {code}"),
            Outcome::Signaled { signal } => signal_name(*signal).to_string(),
            Outcome::TimedOut => "timeout".to_string(),
            Outcome::Cancelled => "cancelled".to_string(),
            Outcome::NotStarted { .. } => "not started".to_string(),
            Outcome::Error { .. } => "error".to_string(),
        }
    }

    /// A few words for people: `ok`, `exit 3`, `signal 11 (SIGSEGV)`, `timed out`.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited { code: 0 } => "ok".to_string(),
            Outcome::Exited { code } => format!("exit {code}"),
            Outcome::Signaled { signal } => format!("signal {signal} ({})", signal_name(*signal)),
            Outcome::TimedOut => "timed out".to_string(),
            Outcome::Cancelled => "cancelled".to_string(),
            Outcome::NotStarted { error } => format!("not started: {error}"),
            // The text itself is the item's stderr, shown with it.
            Outcome::Error { .. } => "error".to_string(),
        }
    }
}

/// `SIGSEGV` for 11, and so on.
pub fn signal_name(signal: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(signal).map_or("unknown signal", |s| s.as_str())
}

/// Everything measured about one finished attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub key: AttemptKey,
    /// Worker slot, 1-based.
    pub slot: usize,
    /// The process ID, or 0 if it never started.
    pub pid: u32,
    pub started: Duration,
    pub ended: Duration,
    pub outcome: Outcome,
    /// The signal that ended the process, if any (also for timeouts and cancellations).
    pub signal: Option<i32>,
    /// CPU time in user and system mode, the process and the children it waited for.
    pub user: Duration,
    pub system: Duration,
    /// Peak resident set size of the largest process, bytes.
    pub max_rss: u64,
    /// Bytes the task wrote to stdout and stderr (including any beyond the file cap).
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The last lines of stderr (lossy UTF-8), for error reports.
    pub stderr_tail: String,
    /// Cores the task's processes were seen on.
    pub cores: Vec<usize>,
    /// Processes of the task still alive after it ended, which poolscope killed.
    pub leftovers_killed: bool,
    /// No further attempt follows this one.
    pub is_final: bool,
    /// What a persistent worker returned for the item, if it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ItemResult>,
    /// Its files that could not be written in full (disk full, I/O error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<LostRecord>,
}

/// What a persistent worker returned for an item.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// Its JSON, held in the records: at most [`crate::worker::HELD_RESULT`] bytes.
    Held(Box<serde_json::value::RawValue>),
    /// Saved to a file of its own ([`crate::record::result_name`]) as it arrived: the bytes
    /// the worker sent, and whether the file holds only the first `max_result` of them.
    Saved { bytes: u64, truncated: bool },
}

/// A record of the run that could not be written in full: its file (relative to the run
/// directory, e.g. `joblog.tsv`, `outputs/7.out`) and the first error met writing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRecord {
    pub file: String,
    pub error: String,
}

impl LostRecord {
    pub fn new(file: impl Into<String>, error: &std::io::Error) -> Self {
        LostRecord {
            file: file.into(),
            error: error.to_string(),
        }
    }
}

impl std::fmt::Display for LostRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {} in full: {}", self.file, self.error)
    }
}

impl AttemptRecord {
    /// An attempt that never ran a process: `error` says why.
    pub fn not_started(key: AttemptKey, slot: usize, at: Duration, error: String) -> Self {
        AttemptRecord {
            key,
            slot,
            pid: 0,
            started: at,
            ended: at,
            stderr_tail: format!("poolscope: {error}"),
            outcome: Outcome::NotStarted { error },
            signal: None,
            user: Duration::ZERO,
            system: Duration::ZERO,
            max_rss: 0,
            stdout_bytes: 0,
            stderr_bytes: 0,
            cores: Vec::new(),
            leftovers_killed: false,
            is_final: false,
            result: None,
            lost: Vec::new(),
        }
    }

    pub fn wall(&self) -> Duration {
        self.ended.saturating_sub(self.started)
    }
}

/// Which stream of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Why a task did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `--resume` found a successful joblog line for it.
    AlreadyDone,
    /// The run halted after a failure.
    Halted,
    /// The run was stopped or interrupted.
    Stopped,
}

/// One process of a running task, as a placement sample saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Placement {
    pub slot: usize,
    pub pid: u32,
    pub core: usize,
}

/// Live load of one worker slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlotLoad {
    pub slot: usize,
    /// CPU use of all the slot's processes, percent of one core.
    pub cpu_percent: f32,
    /// Resident memory of all the slot's processes, bytes.
    pub rss: u64,
}

/// Live output of a running attempt, readable while it runs.
#[derive(Debug, Clone)]
pub struct LiveOutput {
    pub stdout: Arc<Tail>,
    pub stderr: Arc<Tail>,
}

/// A change in the life of a persistent worker (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WorkerChange {
    /// The worker process was started; it is not ready yet.
    Started,
    /// It said it is ready (its `init` has run).
    Ready,
    /// It is gone: how its process ended, and why.
    Exited { outcome: Outcome, why: String },
}

/// What the engine emits.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted(Arc<RunInfo>),
    /// A task will not run in this run.
    TaskSkipped {
        seq: usize,
        reason: SkipReason,
    },
    AttemptStarted {
        key: AttemptKey,
        slot: usize,
        pid: u32,
        at: Duration,
        output: LiveOutput,
    },
    /// A running attempt wrote output (sent at most a few times a second per attempt).
    Output {
        key: AttemptKey,
        stream: Stream,
        total: u64,
    },
    AttemptFinished(Arc<AttemptRecord>),
    /// A persistent worker of `slot` (process `pid`) started, got ready or went away.
    Worker {
        slot: usize,
        pid: u32,
        at: Duration,
        change: WorkerChange,
    },
    /// Which core each process of each running task is on, and per-slot load.
    Placement {
        at: Duration,
        placements: Vec<Placement>,
        loads: Vec<SlotLoad>,
    },
    /// Per-core utilization, percent.
    CoreUsage {
        at: Duration,
        usage: Vec<f32>,
    },
    /// A record of the run could not be written in full (disk full, I/O error); sent once
    /// per file as the run ends, for the files the recorder writes (an attempt's output
    /// files are in its [`AttemptRecord::lost`]).
    RecordProblem(LostRecord),
    /// `summary.json` as the run's end rendered it, whether or not it could be written:
    /// sent just before `RunFinished`, for a run of fewer than
    /// [`crate::record::HELD_WHOLE_BELOW`] tasks (a larger run's summary goes to disk as it
    /// is rendered, and is never held whole).
    Summary(Arc<str>),
    /// The run is over; nothing follows. `self_cpu` is the CPU time (user + system) this
    /// poolscope process used itself, its tasks not included.
    RunFinished {
        at: Duration,
        interrupted: bool,
        self_cpu: Duration,
    },
}

/// What a face may ask of a running engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Start no new task; let running ones finish.
    Stop,
    /// Start no new task and kill the running ones (TERM, then KILL after 2 s).
    Kill,
}
