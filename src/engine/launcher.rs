//! The seam between the scheduler and whatever runs an attempt.
//!
//! The scheduler decides what runs where and when; a [`Launcher`] makes it happen and
//! reports back on a channel. [`super::process::ProcessLauncher`] runs each attempt as its
//! own process group; tests use launchers with fixed outcomes.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::event::{AttemptKey, AttemptRecord, LiveOutput, Stream};
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
}

/// Runs attempts and signals them.
pub trait Launcher: Send {
    /// Start `order`; report `Started` (unless it cannot start) and then `Finished`.
    fn launch(&mut self, order: AttemptOrder);
    /// Send `signal` to every process of the running attempt `key` (main process `pid`).
    fn signal(&mut self, key: AttemptKey, pid: u32, signal: Signal);
}
