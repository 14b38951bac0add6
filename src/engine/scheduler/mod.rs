//! The pool's loop: start tasks into free slots, wait for something to change, react.
//!
//! A task is bound to a slot when the slot is free, in the queue's order. Only a launcher
//! of persistent workers fed tiny items takes more orders waiting behind a running one (as
//! many as [`Launcher::depth`] says, and only while no slot is idle), so that such a slot
//! goes from one item to the next without waiting for this loop; a slot that frees up
//! while the queue is empty takes over an order still waiting behind another slot's.

mod kill;
mod slots;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use super::clock::RunClock;
use super::launcher::{LaunchMsg, Launcher};
use crate::config::{Halt, PoolConfig};
use crate::event::{AttemptKey, AttemptRecord, Control, Event, Outcome, SkipReason, WorkerChange};
use crate::monitor::{Sample, Watched};
use crate::task::Task;
use kill::KillReason;

pub use kill::KILL_GRACE;

/// While replies keep coming, `idle` is still called this often.
const IDLE_AT_LEAST_EVERY: Duration = Duration::from_millis(50);

/// An attempt that has been handed to its slot as the slot's current one.
#[derive(Debug)]
struct Running {
    slot: usize,
    pid: Option<u32>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    kill: Option<(KillReason, Instant)>,
    killed_hard: bool,
    cores: BTreeSet<usize>,
}

/// What the scheduler has put on one worker slot.
#[derive(Debug, Default, Clone)]
struct SlotPlan {
    /// The attempt running there (or about to start).
    current: Option<AttemptKey>,
    /// Orders waiting behind it in the launcher, oldest first (at most
    /// [`Launcher::depth`]).
    waiting: VecDeque<AttemptKey>,
    /// The system refused the slot's last start for a moment: it takes nothing new until
    /// then, or until another attempt ends (see [`LaunchMsg::NoRoom`]).
    resting_until: Option<Instant>,
}

impl SlotPlan {
    fn is_idle(&self) -> bool {
        self.current.is_none() && self.waiting.is_empty()
    }

    fn is_resting(&self, now: Instant) -> bool {
        self.resting_until.is_some_and(|until| until > now)
    }
}

/// A slot refused a start for want of room rests this long, unless an attempt ends first.
const REST: Duration = Duration::from_millis(500);

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
pub struct Scheduler<'e, L: Launcher> {
    tasks: Arc<Vec<Arc<Task>>>,
    config: PoolConfig,
    cores: usize,
    launcher: L,
    inputs: Inputs,
    emit: Box<dyn FnMut(Event) + 'e>,
    clock: RunClock,
    watched: Option<Watched>,
    /// Each slot's live persistent worker: watched by the monitor between items too.
    worker_pids: BTreeMap<usize, u32>,
    idle: Option<Box<dyn FnMut() + 'e>>,
    /// When `idle` was last called.
    last_idle: Instant,
    queue: VecDeque<(usize, u32)>,
    slots: Vec<SlotPlan>,
    running: BTreeMap<AttemptKey, Running>,
    stopping: Option<Stopping>,
    killing: bool,
    interrupted: bool,
}

impl<'e, L: Launcher> Scheduler<'e, L> {
    /// A scheduler for `tasks`, starting them in the order of `queue` (indexes into `tasks`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tasks: Arc<Vec<Arc<Task>>>,
        queue: Vec<usize>,
        config: PoolConfig,
        cores: usize,
        launcher: L,
        inputs: Inputs,
        emit: Box<dyn FnMut(Event) + 'e>,
        clock: RunClock,
    ) -> Self {
        Scheduler {
            slots: vec![SlotPlan::default(); config.workers.max(1)],
            tasks,
            config,
            cores: cores.max(1),
            launcher,
            inputs,
            emit,
            clock,
            watched: None,
            worker_pids: BTreeMap::new(),
            idle: None,
            last_idle: Instant::now(),
            queue: queue.into_iter().map(|i| (i, 1)).collect(),
            running: BTreeMap::new(),
            stopping: None,
            killing: false,
            interrupted: false,
        }
    }

    /// Keep the monitor's list of running processes up to date.
    pub fn watch(mut self, watched: Watched) -> Self {
        self.watched = Some(watched);
        self
    }

    fn call_idle(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle();
        }
        self.last_idle = Instant::now();
    }

    /// Call `idle` whenever nothing is waiting to be handled (e.g. to write gathered
    /// records).
    pub fn on_idle(mut self, idle: Box<dyn FnMut() + 'e>) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Run until every task has ended or the run was stopped. Returns whether the run was
    /// interrupted (stopped or killed by a face).
    pub fn run(mut self) -> bool {
        loop {
            self.start_into_free_slots();
            self.queue_behind_running();
            let busy = self.slots.iter().any(|p| !p.is_idle());
            if !busy && (self.queue.is_empty() || self.stopping.is_some()) {
                break;
            }
            self.wait_for_change();
            self.enforce_deadlines();
        }
        self.skip_the_rest();
        let interrupted = self.interrupted;
        // The launcher goes first (persistent workers are asked to exit and waited for),
        // then what it said on the way out is passed on: the workers' last exits.
        let Scheduler {
            launcher,
            inputs,
            mut emit,
            mut idle,
            ..
        } = self;
        drop(launcher);
        for msg in inputs.replies.try_iter() {
            match msg {
                LaunchMsg::Worker {
                    slot,
                    pid,
                    at,
                    change,
                } => emit(Event::Worker {
                    slot,
                    pid,
                    at,
                    change,
                }),
                LaunchMsg::Panicked(panic) => super::panics::resume(panic),
                _ => {}
            }
        }
        if let Some(idle) = &mut idle {
            idle();
        }
        interrupted
    }

    /// Block until a launcher reply, a control, a sample or the next deadline.
    fn wait_for_change(&mut self) {
        // Fast path while replies arrive back to back (tiny items): no select to set up.
        // Controls and samples are looked at first, so a flood of replies cannot hide them.
        if let Ok(control) = self.inputs.controls.try_recv() {
            return self.on_control(control);
        }
        if let Ok(sample) = self.inputs.samples.try_recv() {
            return self.on_sample(sample);
        }
        if let Ok(msg) = self.inputs.replies.try_recv() {
            // Records gathered in a long flood still go out every so often.
            if self.last_idle.elapsed() >= IDLE_AT_LEAST_EVERY {
                self.call_idle();
            }
            return self.on_reply(msg);
        }
        self.call_idle();
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

    fn on_reply(&mut self, msg: LaunchMsg) {
        match msg {
            LaunchMsg::Started {
                key,
                pid,
                at,
                output,
            } => {
                let Some(slot) = self.slot_of(key) else {
                    return;
                };
                self.make_current(slot, key);
                let killing = self.killing;
                let Some(run) = self.running.get_mut(&key) else {
                    return;
                };
                run.pid = Some(pid);
                // From the start itself: the report of it may come a little later.
                // A limit past the end of time is no limit.
                run.deadline = run
                    .timeout
                    .and_then(|t| self.clock.instant(at).checked_add(t));
                let pending_kill = run.kill.is_some();
                if let Some((_, at)) = &mut run.kill {
                    // The grace before SIGKILL counts from the SIGTERM sent now.
                    *at = Instant::now() + KILL_GRACE;
                    run.killed_hard = false;
                }
                self.set_watched(slot, Some(pid));
                if pending_kill {
                    self.launcher
                        .signal(key, pid, nix::sys::signal::Signal::SIGTERM);
                } else if killing {
                    self.begin_kill(key, KillReason::Cancel, Instant::now());
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
            LaunchMsg::NoRoom(record) => self.on_no_room(*record),
            LaunchMsg::Worker {
                slot,
                pid,
                at,
                change,
            } => {
                match change {
                    WorkerChange::Started => {
                        self.worker_pids.insert(slot, pid);
                    }
                    WorkerChange::Exited { .. } => {
                        self.worker_pids.remove(&slot);
                    }
                    WorkerChange::Ready => {}
                }
                let idle = slot
                    .checked_sub(1)
                    .and_then(|i| self.slots.get(i))
                    .is_some_and(|s| s.current.is_none());
                if idle {
                    self.set_watched(slot, None);
                }
                (self.emit)(Event::Worker {
                    slot,
                    pid,
                    at,
                    change,
                })
            }
            LaunchMsg::Panicked(panic) => super::panics::resume(panic),
        }
    }

    /// `record`'s attempt could not start on its slot for want of room: the slot rests,
    /// and the attempt goes back to the front of the queue for another slot, as GNU
    /// parallel backs off. Only when every other slot rests too (nothing would make room)
    /// does it fail.
    fn on_no_room(&mut self, record: AttemptRecord) {
        let key = record.key;
        let Some(slot) = self.slot_of(key) else {
            return;
        };
        let now = Instant::now();
        let others_can = self
            .slots
            .iter()
            .enumerate()
            .any(|(i, p)| i + 1 != slot && !p.is_resting(now));
        if !others_can && self.stopping.is_none() {
            return self.on_finished(record);
        }
        // Back to the queue: to run elsewhere, or to be skipped if the run stops.
        self.make_current(slot, key);
        self.slots[slot - 1].current = None;
        self.running.remove(&key);
        self.set_watched(slot, None);
        self.return_waiting_orders_of(slot);
        self.slots[slot - 1].resting_until = Some(now + REST);
        self.queue.push_front((key.seq - 1, key.attempt));
    }

    fn on_finished(&mut self, mut record: AttemptRecord) {
        let key = record.key;
        // Room may have been freed: resting slots try again.
        for plan in &mut self.slots {
            plan.resting_until = None;
        }
        let Some(slot) = self.slot_of(key) else {
            return;
        };
        // An order that could not start ends without having been current.
        self.make_current(slot, key);
        self.slots[slot - 1].current = None;
        let Some(run) = self.running.remove(&key) else {
            return;
        };
        self.set_watched(slot, None);
        let raw_success = record.outcome.is_success();
        let mut cores = run.cores;
        cores.extend(record.cores.iter().copied());
        record.cores = cores.into_iter().collect();
        match run.kill {
            Some((KillReason::Timeout, _)) => record.outcome = Outcome::TimedOut,
            Some((KillReason::Cancel, _)) if !raw_success => record.outcome = Outcome::Cancelled,
            _ => {}
        }
        let failed = !record.outcome.is_success();
        if !failed {
            // The tail is kept for error reports; the file has the rest.
            record.stderr_tail.clear();
        }
        let cancelled = record.outcome == Outcome::Cancelled;
        let retry =
            failed && !cancelled && key.attempt <= self.config.retries && self.stopping.is_none();
        if retry {
            // The retry goes before anything else, even the order waiting on this slot
            // (which cannot have started: the slot holds it after a failure).
            if !raw_success {
                self.return_waiting_orders_of(slot);
            }
            self.queue.push_front((key.seq - 1, key.attempt + 1));
        }
        record.is_final = !retry;
        (self.emit)(Event::AttemptFinished(Arc::new(record)));
        super::panics::injected("scheduler");
        if failed && !retry && !cancelled {
            self.halt_after_failure();
        }
        if !raw_success {
            if self.stopping.is_some() {
                // Orders a launcher could not take back when the run stopped (they were
                // already with a worker that has died since) are back in its hands now.
                self.return_waiting_orders_of(slot);
            }
            // The slot holds its waiting orders until told; they may go now.
            self.launcher.resume(slot);
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

    /// Start nothing new: waiting orders go back to the queue.
    fn stop(&mut self, why: Stopping) {
        if self.stopping.is_none() {
            self.stopping = Some(why);
        }
        self.return_waiting_orders();
    }

    fn on_control(&mut self, control: Control) {
        self.interrupted = true;
        self.stop(Stopping::Stopped);
        if control == Control::Kill {
            self.cancel_running();
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
            Sample::Panicked(panic) => super::panics::resume(panic),
        }
    }

    /// The launcher's channel closed: nothing running can report any more.
    fn lose_launcher(&mut self) {
        let now = self.clock.now();
        let lost: Vec<(AttemptKey, Running)> =
            std::mem::take(&mut self.running).into_iter().collect();
        for plan in &mut self.slots {
            *plan = SlotPlan::default();
        }
        for (key, run) in lost {
            let mut record = AttemptRecord::not_started(
                key,
                run.slot,
                now,
                "the launcher went away".to_string(),
            );
            record.pid = run.pid.unwrap_or(0);
            record.is_final = true;
            (self.emit)(Event::AttemptFinished(Arc::new(record)));
        }
        self.stopping = Some(Stopping::Stopped);
    }

    /// Have the monitor watch `pid` for `slot` (the attempt running there), or, without
    /// one, the slot's live persistent worker, if any.
    fn set_watched(&mut self, slot: usize, pid: Option<u32>) {
        let Some(watched) = &self.watched else { return };
        let mut list = watched.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(s, _)| *s != slot);
        if let Some(pid) = pid.or_else(|| self.worker_pids.get(&slot).copied()) {
            list.push((slot, pid));
        }
    }

    fn skip_the_rest(&mut self) {
        let reason = match self.stopping {
            Some(Stopping::Halted) => SkipReason::Halted,
            _ => SkipReason::Stopped,
        };
        let mut queued: Vec<usize> = self.queue.drain(..).map(|(index, _)| index).collect();
        queued.sort_unstable();
        for index in queued {
            let seq = self.tasks[index].seq;
            (self.emit)(Event::TaskSkipped { seq, reason });
        }
    }
}

#[cfg(test)]
mod tests;
