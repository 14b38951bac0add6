//! How a slot's items end: the record of a finished item, and what happens when its
//! worker's process ends (the item it was on fails, the rest go back to the mailbox; a
//! worker that answered items and exits 0 unasked has recycled itself, and the item it
//! was on goes back too).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{CLOSE_GRACE, Head, InFlight, Slot, Worker};
use crate::engine::child::{STDERR_TAIL_BYTES, STDERR_TAIL_LINES};
use crate::engine::launcher::{AttemptOrder, LaunchMsg};
use crate::engine::workers::WorkerContext;
use crate::event::{AttemptRecord, ItemResult, Outcome, Stream, WorkerChange};
use crate::monitor;
use crate::output::Capture;

impl Slot<'_> {
    /// The record of a finished item.
    pub(super) fn record(
        &self,
        item: InFlight,
        started: Duration,
        ended: Duration,
        outcome: Outcome,
        result: Option<ItemResult>,
        usage: (Duration, Duration, Vec<usize>, u64),
    ) -> AttemptRecord {
        let (user, system, cores, max_rss) = usage;
        let key = item.order.key;
        let pid = self.worker.as_ref().map_or(0, |w| w.process.pid);
        let captures = match item.head {
            Some(head) => head.captures,
            None => captures(self.ctx, key),
        };
        let [stdout, mut stderr] = captures;
        if let Outcome::Error { error } = &outcome {
            stderr.push(error.as_bytes());
            if !error.ends_with('\n') {
                stderr.push(b"\n");
            }
        }
        let stderr_tail = if outcome.is_success() {
            String::new()
        } else {
            stderr
                .tail()
                .last_lines(STDERR_TAIL_LINES, STDERR_TAIL_BYTES)
        };
        let (stdout, stderr) = (stdout.finish(), stderr.finish());
        AttemptRecord {
            key,
            slot: self.slot,
            pid,
            started,
            ended,
            signal: match outcome {
                Outcome::Signaled { signal } => Some(signal),
                _ => None,
            },
            outcome,
            user,
            system,
            max_rss,
            stdout_bytes: stdout.total,
            stderr_bytes: stderr.total,
            stderr_tail,
            cores,
            leftovers_killed: false,
            is_final: false,
            result,
            lost: [stdout.lost, stderr.lost].into_iter().flatten().collect(),
        }
    }

    /// The worker's process ended: answer what it answered, fail the item it was on, put
    /// the items it never started back in the mailbox.
    pub(super) fn worker_exited(&mut self) {
        self.read_replies(true);
        self.read_output(0);
        self.read_output(1);
        let Some(mut w) = self.worker.take() else {
            return;
        };
        // Before the PID can be reused: nothing may signal it as this slot's any more.
        *self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        // The item it died on is charged what it used, read while /proc still has it.
        let usage = usage_since(&mut w);
        // Processes it started and left behind go with it (its group outlives it until
        // it is reaped).
        w.process.signal(Signal::SIGKILL);
        let at = self.ctx.run.clock.now();
        let outcome = w.process.reap().unwrap_or_else(|e| Outcome::Error {
            error: format!("lost track of the worker: {e}"),
        });
        let pid = w.process.pid;
        // A clean exit after answering items is a recycle, not a failure: the item it was
        // sent and did not answer goes to the next worker. Not from a worker that answered
        // none, so that an item on which every worker exits fails instead of going round.
        let recycled_itself = w.ready
            && w.done > 0
            && w.broken.is_none()
            && w.leaving.is_none()
            && outcome == Outcome::Exited { code: 0 };
        let head = if recycled_itself {
            None
        } else {
            w.in_flight.pop_front()
        };
        let unstarted: Vec<AttemptOrder> = w.in_flight.drain(..).map(|f| f.order).collect();
        if !unstarted.is_empty() {
            let mut mailbox = self.shared.mailbox();
            for order in unstarted.into_iter().rev() {
                mailbox.orders.push_front(order);
            }
        }
        let why = if let Some(broken) = &w.broken {
            broken.clone()
        } else if recycled_itself {
            format!("recycled itself after {} items (exit 0)", w.done)
        } else if let Some(item) = &head {
            format!("died on task {}", item.order.key.seq)
        } else if let Some(leaving) = w.leaving {
            let mut why = match leaving {
                "recycled" => format!("recycled after {} items", w.done),
                other => other.to_string(),
            };
            if w.killed_leaving {
                why.push_str(&format!(
                    "; killed: it did not exit within {} of EOF on fd 3",
                    crate::human::seconds(CLOSE_GRACE)
                ));
            }
            why
        } else if !w.ready {
            "exited before it was ready".to_string()
        } else {
            "exited between items".to_string()
        };
        // What fails: the item it was on; or, if it left unasked before finishing any item
        // (never ready, or gone at once), the next order, so that a worker that cannot
        // start is not started again and again.
        let victim = match head {
            Some(item) => Some(item),
            None if w.leaving.is_none() && !self.closing && w.done == 0 => self
                .shared
                .mailbox()
                .orders
                .pop_front()
                .map(|order| InFlight { order, head: None }),
            None => None,
        };
        let item_outcome = match (&w.broken, &outcome) {
            (Some(broken), _) => Outcome::Error {
                error: broken.clone(),
            },
            (None, Outcome::Exited { code: 0 }) => Outcome::Error {
                error: if w.ready {
                    "the worker exited without answering the item (exit 0)".to_string()
                } else {
                    "the worker exited before it said it was ready (exit 0)".to_string()
                },
            },
            (None, other) => other.clone(),
        };
        if !w.ready && w.leaving.is_none() && !self.closing {
            // It failed to start; told before its item's end, on which the slot may start
            // the next worker.
            let what = match &item_outcome {
                Outcome::Error { error } => error.clone(),
                other => other.describe(),
            };
            self.start_failed(what, &w.stray[1]);
        }
        if let Some(mut item) = victim {
            if item.head.is_none() {
                // It never ran: the worker's start-up output is its output.
                let key = item.order.key;
                let mut captures = captures(self.ctx, key);
                for (capture, stray) in captures.iter_mut().zip(&w.stray) {
                    capture.push(stray);
                }
                item.head = Some(Head { at, captures });
            }
            let started = item.head.as_ref().map_or(at, |h| h.at);
            self.worker = Some(w);
            let record = self.record(item, started, at, item_outcome, None, usage);
            self.worker = None;
            self.undecided += 1;
            // The worker's exit first: the item's end may be the run's last event.
            self.send_worker(pid, WorkerChange::Exited { outcome, why });
            let _ = self.replies.send(LaunchMsg::Finished(Box::new(record)));
        } else {
            self.send_worker(pid, WorkerChange::Exited { outcome, why });
        }
    }
}

/// CPU the worker used since the last reading (user, system), the core it is on, its RSS.
pub(super) fn usage_since(w: &mut Worker) -> (Duration, Duration, Vec<usize>, u64) {
    let Some(now) = monitor::stat(w.process.pid) else {
        return (Duration::ZERO, Duration::ZERO, Vec::new(), 0);
    };
    let (cpu0, sys0) = w
        .last_stat
        .map_or((0, 0), |s| (s.cpu_ticks, s.system_ticks));
    w.last_stat = Some(now);
    let ticks = monitor::clock_ticks();
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / ticks);
    let system = now.system_ticks.saturating_sub(sys0);
    let user = now.cpu_ticks.saturating_sub(cpu0).saturating_sub(system);
    (
        secs(user),
        secs(system),
        vec![now.core],
        now.rss_pages * monitor::page_size(),
    )
}

/// Fresh captures of an item's stdout and stderr.
pub(super) fn captures(ctx: &WorkerContext, key: crate::event::AttemptKey) -> [Capture; 2] {
    [Stream::Stdout, Stream::Stderr]
        .map(|stream| Capture::of_attempt(&ctx.run.run_dir, key, stream, ctx.run.output_cap))
}
