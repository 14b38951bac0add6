//! A slot's part in the run's count of failed worker starts (see
//! [`crate::engine::workers::starts`]): it reports its workers' failed starts, and once
//! the run stops starting workers it fails its orders at once instead.

use std::time::Duration;

use super::exit::captures;
use super::{Head, InFlight, Slot};
use crate::engine::launcher::LaunchMsg;
use crate::engine::workers::starts::{REPEATS, StartFailure, last_line};
use crate::event::Outcome;

impl Slot<'_> {
    /// A worker of this slot failed to start: `what` its item failed with, `stderr` what
    /// it wrote.
    pub(super) fn start_failed(&self, what: String, stderr: &[u8]) {
        let failure = StartFailure {
            what,
            last_line: last_line(stderr),
        };
        self.ctx.starts.failed(failure, stderr);
    }

    /// If the run starts no worker any more, fail the next order at once with the error
    /// that stopped the starts (what the last worker wrote is its stderr); true if so.
    pub(super) fn refuse_start(&mut self) -> bool {
        let Some(stopped) = self.ctx.starts.stopped() else {
            return false;
        };
        let Some(order) = self.shared.mailbox().orders.pop_front() else {
            return true;
        };
        let at = self.ctx.run.clock.now();
        let mut captures = captures(self.ctx, order.key);
        captures[1].push(&stopped.stderr);
        let error = format!(
            "{REPEATS} workers in a row failed to start alike ({}); no worker starts again in this run",
            stopped.failure.describe()
        );
        let item = InFlight {
            order,
            head: Some(Head { at, captures }),
        };
        let none = (Duration::ZERO, Duration::ZERO, Vec::new(), 0);
        let record = self.record(item, at, at, Outcome::NotStarted { error }, None, none);
        self.undecided += 1;
        let _ = self.replies.send(LaunchMsg::Finished(Box::new(record)));
        true
    }
}
