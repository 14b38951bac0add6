//! A small run's `trace.json` and `summary.json`, rendered as the run goes on.
//!
//! The end of a run is waited for, and rendering the two files whole there was much of
//! what it cost (about 75 µs for 20 tasks on a 2-core VM). So each attempt's trace event
//! and each task's summary entry are rendered in a quiet moment after the attempt has
//! finished (see `Recorder::flush`), and the end renders only what came after: the last
//! attempts, the totals, the utilization counters. The files are the same as rendered
//! whole.

use std::sync::Arc;

use super::{summary, trace};
use crate::state::RunState;
use crate::task::Task;

/// What is rendered ahead.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// The trace events of the run's first `attempts` attempts, each preceded by a comma.
    trace: Vec<u8>,
    attempts: usize,
    /// Per task (by sequence number from 1), its summary entry once its final attempt is
    /// in.
    entries: Vec<Option<String>>,
}

impl Ahead {
    /// Render the attempts that finished since the last call, and the summary entries of
    /// the tasks they ended. What fails to render is left to the end, which says so.
    pub(super) fn catch_up(&mut self, state: &RunState, tasks: &[Arc<Task>]) {
        if self.entries.len() < tasks.len() {
            self.entries.resize(tasks.len(), None);
        }
        for a in state.attempts.iter().skip(self.attempts) {
            let rendered = self.trace.len();
            if trace::put_attempt(state, a, &mut self.trace).is_err() {
                self.trace.truncate(rendered);
                return;
            }
            self.attempts += 1;
            let i = a.key.seq.wrapping_sub(1);
            if a.is_final
                && let (Some(task), Some(status), Some(entry)) =
                    (tasks.get(i), state.tasks.get(i), self.entries.get_mut(i))
            {
                *entry = summary::task_entry(task, status).ok();
            }
        }
    }

    /// `trace.json` of `state`, with what is rendered ahead.
    pub(super) fn trace(&self, state: &RunState) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.trace.len() + 4096);
        trace::write(state, &self.trace, self.attempts, &mut out)?;
        Ok(out)
    }

    /// `summary.json` of `state`, with what is rendered ahead.
    pub(super) fn summary(
        &self,
        state: &RunState,
        tasks: &[Arc<Task>],
    ) -> serde_json::Result<String> {
        summary::render(state, tasks, &self.entries)
    }
}
