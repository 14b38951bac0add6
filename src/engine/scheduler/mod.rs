//! The pool's loop: start tasks into free slots, wait for something to change, react.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};
use nix::sys::signal::Signal;

use super::clock::RunClock;
use super::launcher::{AttemptOrder, LaunchMsg, Launcher};
use crate::config::{Halt, PoolConfig};
use crate::event::{AttemptKey, AttemptRecord, Control, Event, Outcome, SkipReason};
use crate::monitor::{Sample, Watched};
use crate::task::Task;

/// Time between SIGTERM and SIGKILL when poolscope stops an attempt.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Why poolscope is stopping an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Cancel,
}

#[derive(Debug)]
struct Running {
    slot: usize,
    pid: Option<u32>,
    deadline: Option<Instant>,
    kill: Option<(KillReason, Instant)>,
    killed_hard: bool,
    cores: BTreeSet<usize>,
}

/// Why no new task starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Halted,
    Stopped,
}

/// What the loop waits for.
pub struct Inputs {
    pub replies: Receiver<LaunchMsg>,
    pub controls: Receiver<Control>,
    pub samples: Receiver<Sample>,
}

/// The pool's scheduler. Owns the queue, the slots and the running attempts.
pub struct Scheduler<L: Launcher> {
    tasks: Vec<Arc<Task>>,
    config: PoolConfig,
    cores: usize,
    launcher: L,
    inputs: Inputs,
    emit: Box<dyn FnMut(Event) + Send>,
    clock: RunClock,
    watched: Option<Watched>,
    queue: VecDeque<(usize, u32)>,
    free: BTreeSet<usize>,
    running: BTreeMap<AttemptKey, Running>,
    stopping: Option<Stopping>,
    interrupted: bool,
}

impl<L: Launcher> Scheduler<L> {
    /// A scheduler for `tasks`, starting them in the order of `queue` (indexes into `tasks`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tasks: Vec<Arc<Task>>,
        queue: Vec<usize>,
        config: PoolConfig,
        cores: usize,
        launcher: L,
        inputs: Inputs,
        emit: Box<dyn FnMut(Event) + Send>,
        clock: RunClock,
    ) -> Self {
        Scheduler {
            free: (1..=config.workers.max(1)).collect(),
            tasks,
            config,
            cores: cores.max(1),
            launcher,
            inputs,
            emit,
            clock,
            watched: None,
            queue: queue.into_iter().map(|i| (i, 1)).collect(),
            running: BTreeMap::new(),
            stopping: None,
            interrupted: false,
        }
    }

    /// Keep the monitor's list of running processes up to date.
    pub fn watch(mut self, watched: Watched) -> Self {
        self.watched = Some(watched);
        self
    }

    /// Run until every task has ended or the run was stopped. Returns whether the run was
    /// interrupted (stopped or killed by a face).
    pub fn run(mut self) -> bool {
        loop {
            self.start_into_free_slots();
            if self.running.is_empty() && (self.queue.is_empty() || self.stopping.is_some()) {
                break;
            }
            self.wait_for_change();
            self.enforce_deadlines();
        }
        self.skip_the_rest();
        self.interrupted
    }

    fn start_into_free_slots(&mut self) {
        while self.stopping.is_none() {
            let Some(&slot) = self.free.first() else {
                return;
            };
            let Some((index, attempt)) = self.queue.pop_front() else {
                return;
            };
            self.free.remove(&slot);
            let task = Arc::clone(&self.tasks[index]);
            let key = AttemptKey {
                seq: task.seq,
                attempt,
            };
            let timeout = task.timeout.or(self.config.timeout);
            self.running.insert(
                key,
                Running {
                    slot,
                    pid: None,
                    deadline: timeout.map(|t| Instant::now() + t),
                    kill: None,
                    killed_hard: false,
                    cores: BTreeSet::new(),
                },
            );
            let core = self.config.pin.then(|| (slot - 1) % self.cores);
            self.launcher.launch(AttemptOrder {
                key,
                task,
                slot,
                core,
            });
        }
    }

    /// Block until a launcher reply, a control, a sample or the next deadline.
    fn wait_for_change(&mut self) {
        let mut select = Select::new();
        let replies = select.recv(&self.inputs.replies);
        let controls = select.recv(&self.inputs.controls);
        let samples = select.recv(&self.inputs.samples);
        let op = match self.next_deadline() {
            Some(at) => match select.select_deadline(at) {
                Ok(op) => op,
                Err(_) => return,
            },
            None => select.select(),
        };
        match op.index() {
            i if i == replies => match op.recv(&self.inputs.replies) {
                Ok(msg) => self.on_reply(msg),
                Err(_) => self.lose_launcher(),
            },
            i if i == controls => match op.recv(&self.inputs.controls) {
                Ok(control) => self.on_control(control),
                Err(_) => self.inputs.controls = crossbeam_channel::never(),
            },
            i if i == samples => match op.recv(&self.inputs.samples) {
                Ok(sample) => self.on_sample(sample),
                Err(_) => self.inputs.samples = crossbeam_channel::never(),
            },
            _ => {}
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.running
            .values()
            .filter_map(|r| match r.kill {
                Some((_, at)) if !r.killed_hard => Some(at),
                Some(_) => None,
                None => r.deadline,
            })
            .min()
    }

    fn on_reply(&mut self, msg: LaunchMsg) {
        match msg {
            LaunchMsg::Started {
                key,
                pid,
                at,
                output,
            } => {
                let Some(run) = self.running.get_mut(&key) else {
                    return;
                };
                run.pid = Some(pid);
                let slot = run.slot;
                let pending_kill = run.kill.is_some();
                self.set_watched(slot, Some(pid));
                if pending_kill {
                    self.launcher.signal(key, pid, Signal::SIGTERM);
                }
                (self.emit)(Event::AttemptStarted {
                    key,
                    slot,
                    pid,
                    at,
                    output,
                });
            }
            LaunchMsg::Output { key, stream, total } => {
                (self.emit)(Event::Output { key, stream, total });
            }
            LaunchMsg::Finished(record) => self.on_finished(*record),
        }
    }

    fn on_finished(&mut self, mut record: AttemptRecord) {
        let Some(run) = self.running.remove(&record.key) else {
            return;
        };
        self.free.insert(run.slot);
        self.set_watched(run.slot, None);
        let mut cores = run.cores;
        cores.extend(record.cores.iter().copied());
        record.cores = cores.into_iter().collect();
        match run.kill {
            Some((KillReason::Timeout, _)) => record.outcome = Outcome::TimedOut,
            Some((KillReason::Cancel, _)) if !record.outcome.is_success() => {
                record.outcome = Outcome::Cancelled;
            }
            _ => {}
        }
        let failed = !record.outcome.is_success();
        if !failed {
            // The tail is kept for error reports; the file has the rest.
            record.stderr_tail.clear();
        }
        let cancelled = record.outcome == Outcome::Cancelled;
        let retry = failed
            && !cancelled
            && record.key.attempt <= self.config.retries
            && self.stopping.is_none();
        if retry {
            let index = record.key.seq - 1;
            self.queue.push_front((index, record.key.attempt + 1));
        }
        record.is_final = !retry;
        (self.emit)(Event::AttemptFinished(Arc::new(record)));
        if failed && !retry && !cancelled {
            self.halt_after_failure();
        }
    }

    fn halt_after_failure(&mut self) {
        match self.config.halt {
            Halt::Never => {}
            Halt::Soon => self.stop(Stopping::Halted),
            Halt::Now => {
                self.stop(Stopping::Halted);
                self.cancel_running();
            }
        }
    }

    fn stop(&mut self, why: Stopping) {
        if self.stopping.is_none() {
            self.stopping = Some(why);
        }
    }

    fn on_control(&mut self, control: Control) {
        self.interrupted = true;
        self.stop(Stopping::Stopped);
        if control == Control::Kill {
            self.cancel_running();
        }
    }

    fn cancel_running(&mut self) {
        let now = Instant::now();
        let keys: Vec<AttemptKey> = self.running.keys().copied().collect();
        for key in keys {
            self.begin_kill(key, KillReason::Cancel, now);
        }
    }

    fn begin_kill(&mut self, key: AttemptKey, reason: KillReason, now: Instant) {
        let Some(run) = self.running.get_mut(&key) else {
            return;
        };
        if run.kill.is_some() {
            return;
        }
        run.kill = Some((reason, now + KILL_GRACE));
        if let Some(pid) = run.pid {
            self.launcher.signal(key, pid, Signal::SIGTERM);
        }
    }

    /// Time out attempts past their limit; SIGKILL those that ignored SIGTERM.
    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        for (key, run) in &mut self.running {
            match run.kill {
                Some((_, at)) if at <= now && !run.killed_hard => {
                    if let Some(pid) = run.pid {
                        run.killed_hard = true;
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

    fn on_sample(&mut self, sample: Sample) {
        match sample {
            Sample::Placement {
                at,
                placements,
                loads,
            } => {
                for p in &placements {
                    if let Some(run) = self.running.values_mut().find(|r| r.slot == p.slot) {
                        run.cores.insert(p.core);
                    }
                }
                (self.emit)(Event::Placement {
                    at,
                    placements,
                    loads,
                });
            }
            Sample::Cores { at, usage } => (self.emit)(Event::CoreUsage { at, usage }),
        }
    }

    /// The launcher's channel closed: nothing running can report any more.
    fn lose_launcher(&mut self) {
        let now = self.clock.now();
        let lost: Vec<(AttemptKey, Running)> =
            std::mem::take(&mut self.running).into_iter().collect();
        for (key, run) in lost {
            self.free.insert(run.slot);
            let record = AttemptRecord {
                key,
                slot: run.slot,
                pid: run.pid.unwrap_or(0),
                started: now,
                ended: now,
                outcome: Outcome::NotStarted {
                    error: "the launcher went away".to_string(),
                },
                signal: None,
                user: Duration::ZERO,
                system: Duration::ZERO,
                max_rss: 0,
                stdout_bytes: 0,
                stderr_bytes: 0,
                stderr_tail: String::new(),
                cores: Vec::new(),
                leftovers_killed: false,
                is_final: true,
            };
            (self.emit)(Event::AttemptFinished(Arc::new(record)));
        }
        self.stop(Stopping::Stopped);
    }

    fn set_watched(&mut self, slot: usize, pid: Option<u32>) {
        let Some(watched) = &self.watched else { return };
        let mut list = watched.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(s, _)| *s != slot);
        if let Some(pid) = pid {
            list.push((slot, pid));
        }
    }

    fn skip_the_rest(&mut self) {
        let reason = match self.stopping {
            Some(Stopping::Halted) => SkipReason::Halted,
            _ => SkipReason::Stopped,
        };
        let queued: Vec<(usize, u32)> = self.queue.drain(..).collect();
        for (index, _) in queued {
            let seq = self.tasks[index].seq;
            (self.emit)(Event::TaskSkipped { seq, reason });
        }
    }
}

#[cfg(test)]
mod tests;
