//! `summary.json`: the run's configuration, totals and per-task results.

use serde::{Deserialize, Serialize};

use crate::config::PoolConfig;
use crate::event::{CleanupInfo, ItemResult, LostRecord, Outcome};
use crate::state::{RunState, TaskStatus};
use crate::task::Task;

pub const FILE: &str = "summary.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub run_dir: String,
    pub config: Option<PoolConfig>,
    pub cores: usize,
    /// Seconds since the Unix epoch.
    pub started_at: f64,
    pub wall_seconds: f64,
    pub interrupted: bool,
    pub totals: Totals,
    /// Summed wall time of every attempt: what one worker would have needed.
    pub serial_estimate_seconds: f64,
    /// `serial_estimate_seconds / wall_seconds`.
    pub speedup: Option<f64>,
    /// CPU seconds poolscope itself used (user + system, its tasks not included).
    pub poolscope_cpu_seconds: f64,
    /// Whether tasks ran in a PID namespace, and if not, why not.
    #[serde(default)]
    pub cleanup: CleanupInfo,
    pub tasks: Vec<TaskSummary>,
    /// Persistent workers (DESIGN §3), in the order they started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerSummary>,
    /// Records that could not be written in full (disk full, I/O error): each file once,
    /// with the first error. `summary.json` itself is not among them when it is the one
    /// that failed; the command line's last line and exit code say so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_records: Vec<LostRecord>,
}

/// One persistent worker process: seconds from the run's start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSummary {
    pub slot: usize,
    pub pid: u32,
    pub started_seconds: f64,
    pub ready_seconds: Option<f64>,
    pub exited_seconds: Option<f64>,
    pub items: usize,
    /// Why it went away and how its process ended, e.g. `recycled after 3 items (ok)`.
    pub exit: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Totals {
    pub tasks: usize,
    pub ok: usize,
    pub failed: usize,
    pub timed_out: usize,
    /// Stopped by poolscope: the run was stopped, killed or halted.
    #[serde(default)]
    pub cancelled: usize,
    pub skipped: usize,
    pub not_run: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSummary {
    pub seq: usize,
    pub name: String,
    pub command: String,
    /// `ok`, `failed`, `timed_out`, `cancelled`, `skipped: REASON`, `not_run`.
    pub status: String,
    /// How the last attempt ended: `ok`, `exit 3`, `signal 11 (SIGSEGV)`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds from the run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_bytes: Option<u64>,
    /// Last lines of stderr, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// What a persistent worker returned for the item, when it is held in the records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<serde_json::value::RawValue>>,
    /// Where a result too large to hold was saved (`outputs/N.result`), how many bytes the
    /// worker sent, and whether the file holds only the first `max_result` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_truncated: Option<bool>,
    /// The error a persistent worker answered the item with (e.g. a traceback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    /// Summarise `state`; `tasks` gives the commands.
    pub fn of(state: &RunState, tasks: &[impl std::borrow::Borrow<Task>]) -> Summary {
        Summary {
            tasks: tasks
                .iter()
                .zip(&state.tasks)
                .map(|(task, status)| task_summary(task.borrow(), status))
                .collect(),
            ..Summary::of_run(state)
        }
    }

    /// Everything but the per-task entries.
    fn of_run(state: &RunState) -> Summary {
        let info = state.info.as_ref();
        let counts = state.counts();
        Summary {
            name: info.map(|i| i.name.clone()).unwrap_or_default(),
            run_dir: info
                .map(|i| i.run_dir.display().to_string())
                .unwrap_or_default(),
            config: info.map(|i| i.config.clone()),
            cores: info.map_or(0, |i| i.cores),
            started_at: info.map_or(0.0, |i| super::epoch::seconds(i.started_at)),
            wall_seconds: state.elapsed().as_secs_f64(),
            interrupted: state.end.is_some_and(|e| e.interrupted),
            totals: Totals {
                tasks: counts.total,
                ok: counts.ok,
                failed: counts.failed,
                timed_out: counts.timed_out,
                cancelled: counts.cancelled,
                skipped: counts.skipped,
                not_run: counts.queued + counts.running,
            },
            serial_estimate_seconds: state.task_time().as_secs_f64(),
            speedup: state.speedup(),
            poolscope_cpu_seconds: state.end.map_or(0.0, |e| e.self_cpu.as_secs_f64()),
            cleanup: info.map(|i| i.cleanup.clone()).unwrap_or_default(),
            tasks: Vec::new(),
            workers: state
                .workers
                .iter()
                .map(|w| WorkerSummary {
                    slot: w.slot,
                    pid: w.pid,
                    started_seconds: w.started.as_secs_f64(),
                    ready_seconds: w.ready.map(|d| d.as_secs_f64()),
                    exited_seconds: w.exited.map(|d| d.as_secs_f64()),
                    items: w.items,
                    exit: w.exit.clone(),
                })
                .collect(),
            incomplete_records: state.lost_records.clone(),
        }
    }
}

fn task_summary(task: &Task, status: &TaskStatus) -> TaskSummary {
    let mut s = TaskSummary {
        seq: task.seq,
        name: task.name.clone(),
        command: task.command_line(None),
        status: "not_run".to_string(),
        outcome: None,
        exit_code: None,
        signal: None,
        attempts: 0,
        slot: None,
        pid: None,
        start_seconds: None,
        wall_seconds: None,
        user_seconds: None,
        system_seconds: None,
        max_rss_bytes: None,
        cores: Vec::new(),
        stdout_bytes: None,
        stderr_bytes: None,
        stderr_tail: None,
        result: None,
        result_file: None,
        result_bytes: None,
        result_truncated: None,
        error: None,
    };
    match status {
        TaskStatus::Skipped { reason } => {
            s.status = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(|r| format!("skipped: {r}")))
                .unwrap_or_else(|| "skipped".to_string());
        }
        TaskStatus::Finished { record } if record.is_final => {
            let ok = record.outcome.is_success();
            s.status = match record.outcome {
                _ if ok => "ok",
                Outcome::TimedOut => "timed_out",
                Outcome::Cancelled => "cancelled",
                _ => "failed",
            }
            .to_string();
            s.command = task.command_line(Some(record.slot));
            s.outcome = Some(record.outcome.describe());
            s.exit_code = match record.outcome {
                Outcome::Exited { code } => Some(code),
                _ => None,
            };
            s.signal = record.signal;
            s.attempts = record.key.attempt;
            s.slot = Some(record.slot);
            s.pid = Some(record.pid);
            s.start_seconds = Some(record.started.as_secs_f64());
            s.wall_seconds = Some(record.wall().as_secs_f64());
            s.user_seconds = Some(record.user.as_secs_f64());
            s.system_seconds = Some(record.system.as_secs_f64());
            s.max_rss_bytes = Some(record.max_rss);
            s.cores = record.cores.clone();
            s.stdout_bytes = Some(record.stdout_bytes);
            s.stderr_bytes = Some(record.stderr_bytes);
            s.stderr_tail = (!ok).then(|| record.stderr_tail.clone());
            match &record.result {
                Some(ItemResult::Held(value)) => s.result = Some(value.clone()),
                Some(ItemResult::Saved { bytes, truncated }) => {
                    s.result_file = Some(super::result_name(record.key));
                    s.result_bytes = Some(*bytes);
                    s.result_truncated = Some(*truncated);
                }
                None => {}
            }
            s.error = match &record.outcome {
                Outcome::Error { error } => Some(error.clone()),
                _ => None,
            };
        }
        _ => {}
    }
    s
}
