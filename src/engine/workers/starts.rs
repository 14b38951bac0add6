//! Workers that cannot start, counted across every slot of a run.
//!
//! A worker fails to start when it cannot be spawned, or ends before it says it is ready
//! without being asked to (a Python module that no longer imports, a program that exits at
//! once, one that never says ready). Once [`REPEATS`] starts in a row have failed the same
//! way, no slot starts a worker again in this run: the items still waiting fail at once
//! with that error, instead of each costing a start that fails like the ones before. A
//! worker that gets ready ends the streak.

use std::sync::{Arc, Mutex};

/// Failed starts in a row, all alike, after which no worker starts any more.
pub const REPEATS: u32 = 2;

/// How a start failed, as two failures are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    /// How the item it was started for failed, in words: `exit 1`, `signal 11 (SIGSEGV)`,
    /// why it was broken, or why it could not be spawned.
    pub what: String,
    /// The last line it wrote on stderr (for a Python module, the traceback's last line),
    /// empty if none.
    pub last_line: String,
}

impl StartFailure {
    /// `what` with `last_line`: `exit 1: ModuleNotFoundError: No module named 'nump'`.
    pub fn describe(&self) -> String {
        if self.last_line.is_empty() {
            self.what.clone()
        } else {
            format!("{}: {}", self.what, self.last_line)
        }
    }
}

/// The failure that stopped the starts, and what the last worker wrote on stderr.
#[derive(Debug)]
pub struct Stopped {
    pub failure: StartFailure,
    pub stderr: Vec<u8>,
}

/// The run's streak of failed starts, shared by its slots.
#[derive(Debug, Default)]
pub struct StartFailures {
    state: Mutex<Streak>,
}

#[derive(Debug, Default)]
struct Streak {
    last: Option<StartFailure>,
    count: u32,
    stopped: Option<Arc<Stopped>>,
}

impl StartFailures {
    /// A worker failed to start as `failure`, having written `stderr`.
    pub fn failed(&self, failure: StartFailure, stderr: &[u8]) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.last.as_ref() == Some(&failure) {
            s.count += 1;
        } else {
            s.last = Some(failure.clone());
            s.count = 1;
        }
        if s.count >= REPEATS && s.stopped.is_none() {
            s.stopped = Some(Arc::new(Stopped {
                failure,
                stderr: stderr.to_vec(),
            }));
        }
    }

    /// A worker said it is ready: the streak ends.
    pub fn ready(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last = None;
        s.count = 0;
    }

    /// Why no worker may start any more, if that is so.
    pub fn stopped(&self) -> Option<Arc<Stopped>> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.stopped.clone()
    }
}

/// The last line of `stderr` that is not blank, lossily decoded.
pub fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or_else(String::new, |l| l.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(what: &str, last: &str) -> StartFailure {
        StartFailure {
            what: what.to_string(),
            last_line: last.to_string(),
        }
    }

    #[test]
    fn two_alike_in_a_row_stop_the_starts() {
        let f = StartFailures::default();
        f.failed(
            failure("exit 1", "ImportError: x"),
            b"Traceback\nImportError: x\n",
        );
        assert!(f.stopped().is_none());
        f.failed(
            failure("exit 1", "ImportError: x"),
            b"Traceback\nImportError: x\n",
        );
        let stopped = f.stopped().expect("stopped");
        assert_eq!(stopped.failure.describe(), "exit 1: ImportError: x");
        assert_eq!(stopped.stderr, b"Traceback\nImportError: x\n");
    }

    #[test]
    fn different_failures_or_a_ready_worker_end_the_streak() {
        let f = StartFailures::default();
        f.failed(failure("exit 1", "a"), b"");
        f.failed(failure("exit 1", "b"), b"");
        f.failed(failure("exit 2", "b"), b"");
        assert!(f.stopped().is_none(), "never the same twice in a row");
        f.ready();
        f.failed(failure("exit 2", "b"), b"");
        assert!(f.stopped().is_none(), "a ready worker came between");
        f.failed(failure("exit 2", "b"), b"");
        assert!(f.stopped().is_some());
        f.ready();
        assert!(f.stopped().is_some(), "once stopped, stopped for the run");
    }

    #[test]
    fn the_last_line_is_the_last_that_says_something() {
        assert_eq!(
            last_line(b"Traceback\n  x\nKeyError: 1\n\n  \n"),
            "KeyError: 1"
        );
        assert_eq!(last_line(b""), "");
    }
}
