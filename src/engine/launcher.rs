//! The seam between the scheduler and whatever runs an attempt.
//!
//! The scheduler decides what runs where and when; a [`Launcher`] makes it happen and
//! reports back on a channel. [`super::process::ProcessLauncher`] runs each attempt as its
//! own process group; the scheduler's tests use a launcher with scripted outcomes.
//!
//! Each worker slot holds at most one running attempt and up to [`Launcher::depth`] waiting
//! orders (none for processes, many for persistent workers fed tiny items). A waiting order
//! starts the moment the one before it succeeds, without a round trip through the
//! scheduler; after a failure the slot waits for [`Launcher::resume`], so that retries and
//! halting are decided first. A waiting order can be taken back until the launcher has
//! handed it on (to a worker's pipe), so a slot that frees up early can run it instead.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::event::{AttemptKey, AttemptRecord, LiveOutput, Stream, WorkerChange};
use crate::task::Task;

/// What to start: one attempt of one task in one worker slot.
#[derive(Debug, Clone)]
pub struct AttemptOrder {
    pub key: AttemptKey,
    pub task: Arc<Task>,
    /// Worker slot, 1-based.
    pub slot: usize,
    /// Pin the attempt's processes to this core.
    pub core: Option<usize>,
}

/// What a launcher reports about an attempt.
#[derive(Debug)]
pub enum LaunchMsg {
    /// The attempt's process is running.
    Started {
        key: AttemptKey,
        pid: u32,
        at: Duration,
        output: LiveOutput,
    },
    /// It wrote output (throttled).
    Output {
        key: AttemptKey,
        stream: Stream,
        total: u64,
    },
    /// It ended. `outcome` says how the process ended; the scheduler turns its own kills
    /// into `TimedOut` or `Cancelled` and fills in `is_final` and `cores`.
    Finished(Box<AttemptRecord>),
    /// The system refused to start it for a moment (descriptors, processes or memory:
    /// see [`super::process::is_transient`]); the record says so as a not-started
    /// attempt. The scheduler gives it to another slot, or fails it with the record when
    /// no other slot could run it.
    NoRoom(Box<AttemptRecord>),
    /// A persistent worker changed (launchers of plain processes never send this).
    Worker {
        slot: usize,
        pid: u32,
        at: Duration,
        change: WorkerChange,
    },
    /// The launcher's thread panicked (described by [`super::panics::catch`]): the run
    /// ends on it as an internal error.
    Panicked(String),
}

/// Runs attempts and signals them.
pub trait Launcher: Send {
    /// Start `order` on its slot at once if the slot is idle, else as soon as the slot's
    /// running attempt succeeds (or, after a failure, once [`Launcher::resume`] is called).
    /// Reports `Started` (unless it cannot start) and then `Finished`.
    fn launch(&mut self, order: AttemptOrder);
    /// Take back the last order waiting on `slot`, if it has not started.
    fn retract(&mut self, slot: usize) -> Option<AttemptOrder>;
    /// Take back the order waiting on `slot` that would start first, if it has not
    /// started, for another slot to run.
    fn take_over(&mut self, slot: usize) -> Option<AttemptOrder> {
        self.retract(slot)
    }
    /// After a failed attempt on `slot`, let the slot start its waiting order.
    fn resume(&mut self, slot: usize);
    /// Send `signal` to every process of the running attempt `key` (main process `pid`).
    fn signal(&mut self, key: AttemptKey, pid: u32, signal: Signal);
    /// Take back `key`, handed to its slot as the one to run next but not started yet
    /// (a persistent worker still starting up), so that a stop need not wait for it.
    fn cancel_unstarted(&mut self, _key: AttemptKey) -> Option<AttemptOrder> {
        None
    }
    /// `slot` is idle and nothing is left to give it for now: it may let go of what it
    /// holds (a process launcher's slot thread ends). A later order starts it again.
    fn retire(&mut self, _slot: usize) {}
    /// How many orders a slot may hold waiting behind its running attempt: none unless
    /// the launcher says so.
    fn depth(&self) -> usize {
        0
    }
}
