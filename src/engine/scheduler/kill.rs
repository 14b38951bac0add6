//! Stopping attempts: time limits, cancellations, and SIGKILL for those that ignore SIGTERM.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Scheduler;
use crate::engine::launcher::Launcher;
use crate::event::AttemptKey;

/// Time between SIGTERM and SIGKILL when poolscope stops an attempt.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Why poolscope is stopping an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KillReason {
    Timeout,
    Cancel,
}

impl<L: Launcher> Scheduler<'_, L> {
    /// The next instant something must be signalled.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let resting = self.slots.iter().filter_map(|p| p.resting_until);
        self.running
            .values()
            .filter_map(|r| match r.kill {
                Some((_, at)) if !r.killed_hard => Some(at),
                Some(_) => None,
                None => r.deadline,
            })
            .chain(resting)
            .min()
    }

    /// Cancel every running attempt, and any that starts from now on.
    pub(super) fn cancel_running(&mut self) {
        self.killing = true;
        let now = Instant::now();
        let keys: Vec<AttemptKey> = self.running.keys().copied().collect();
        for key in keys {
            self.begin_kill(key, KillReason::Cancel, now);
        }
    }

    /// SIGTERM now (if the process runs yet), SIGKILL after the grace.
    pub(super) fn begin_kill(&mut self, key: AttemptKey, reason: KillReason, now: Instant) {
        let Some(run) = self.running.get_mut(&key) else {
            return;
        };
        if run.kill.is_some() {
            return;
        }
        run.kill = Some((reason, now + KILL_GRACE));
        if let Some(pid) = run.pid {
            self.launcher.signal(key, pid, Signal::SIGTERM);
            return;
        }
        // Not started yet (a persistent worker still starting): take it back if the
        // launcher can, and it is not run at all.
        let slot = run.slot;
        if let Some(order) = self.launcher.cancel_unstarted(key) {
            self.running.remove(&key);
            if self.slots[slot - 1].current == Some(key) {
                self.slots[slot - 1].current = None;
            }
            self.queue
                .push_front((order.task.seq - 1, order.key.attempt));
        }
    }

    /// Time out attempts past their limit; SIGKILL those that ignored SIGTERM.
    pub(super) fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        for (key, run) in &mut self.running {
            match run.kill {
                Some((_, at)) if at <= now && !run.killed_hard => {
                    // Not started yet: nothing to kill; its start sends SIGTERM and
                    // sets a new grace.
                    run.killed_hard = true;
                    if let Some(pid) = run.pid {
                        self.launcher.signal(*key, pid, Signal::SIGKILL);
                    }
                }
                None if run.deadline.is_some_and(|d| d <= now) => timed_out.push(*key),
                _ => {}
            }
        }
        for key in timed_out {
            self.begin_kill(key, KillReason::Timeout, now);
        }
    }
}
