//! Never an orphan.
//!
//! Every process a run starts carries `POOLSCOPE_GUARD=<token>/<run>/<task>.<attempt>/`
//! in its environment, and so does everything it spawns unless it scrubs its environment.
//! That marker finds a task's processes in `/proc` even after they left its process group
//! (`setsid`) or were re-parented (double fork).
//!
//! Three layers use it:
//! 1. when a task's main process exits, its process group is killed, and if its output
//!    pipes still stay open, the processes carrying its marker are killed too;
//! 2. when a run ends (just after it says so), every process still carrying the run's
//!    marker is killed;
//! 3. the guardian, a small child process started before the first task (see
//!    [`guardian`]), kills every process that carries this process's token once this
//!    process has ended, however it ended; and where the kernel allows it, tasks run in
//!    a PID namespace that ends with the guardian ([`namespace`]), which leaves the
//!    kernel to kill them all, even when poolscope and the guardian die together.

pub mod guardian;
pub mod namespace;
pub mod spawner;

pub use guardian::{
    CHECK_EVERY, Cleanup, cleanup, guardian_main, guardian_running, keep_guardian, namespace_ready,
    start_guardian, start_in_namespace,
};

use std::fs;
use std::io::Read;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::event::AttemptKey;

/// The environment variable that marks every process of a run.
pub const MARKER_VAR: &str = "POOLSCOPE_GUARD";

/// This process's token: unique per poolscope process.
pub fn process_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{:x}", std::process::id(), nanos)
    })
}

/// The marker prefix of one run.
#[derive(Debug, Clone)]
pub struct RunMarker {
    prefix: String,
}

impl RunMarker {
    /// A marker no other run of this process shares.
    pub fn new() -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
        RunMarker {
            prefix: format!("{}/{run}/", process_token()),
        }
    }

    /// Prefix every process of this run carries.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full marker of one attempt.
    pub fn attempt(&self, key: AttemptKey) -> String {
        format!("{}{}.{}/", self.prefix, key.seq, key.attempt)
    }
}

impl Default for RunMarker {
    fn default() -> Self {
        Self::new()
    }
}

/// PIDs of the live processes whose marker starts with `prefix` (this process excluded).
pub fn find(prefix: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={prefix}");
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut buf = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        buf.clear();
        let Ok(mut file) = fs::File::open(entry.path().join("environ")) else {
            continue;
        };
        if file.read_to_end(&mut buf).is_err() {
            continue;
        }
        if buf
            .split(|&b| b == 0)
            .any(|var| var.starts_with(needle.as_bytes()))
        {
            found.push(pid);
        }
    }
    found
}

/// Kill (SIGKILL) every process whose marker starts with `prefix`, again and again until
/// none is left or `limit` has passed. Returns how many were killed.
pub fn sweep(prefix: &str, limit: Duration) -> usize {
    let deadline = std::time::Instant::now() + limit;
    let mut killed = 0;
    loop {
        let pids = find(prefix);
        if pids.is_empty() {
            return killed;
        }
        for pid in pids {
            if signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        if std::time::Instant::now() >= deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
