//! `RunState`: the model both faces draw, folded from the engine's events. Pure: it does
//! no I/O and reads no clock; time advances only with the events' own times.

use std::sync::Arc;
use std::time::Duration;

use crate::event::{
    AttemptKey, AttemptRecord, Event, LiveOutput, LostRecord, Outcome, Placement, RunInfo,
    SkipReason, WorkerChange,
};

/// Where a task stands.
#[derive(Debug, Clone)]
pub enum TaskStatus {
    Queued,
    Running {
        attempt: u32,
        slot: usize,
        pid: u32,
        started: Duration,
    },
    /// Its last attempt ended (`record.is_final` tells whether another follows).
    Finished {
        record: Arc<AttemptRecord>,
    },
    Skipped {
        reason: SkipReason,
    },
}

/// What a worker slot is doing now.
#[derive(Debug, Clone)]
pub struct SlotRun {
    pub key: AttemptKey,
    pub pid: u32,
    pub since: Duration,
    pub output: LiveOutput,
}

/// One worker slot.
#[derive(Debug, Clone, Default)]
pub struct SlotState {
    pub current: Option<SlotRun>,
    /// PID of the most recent process in this slot.
    pub last_pid: Option<u32>,
    pub cpu_percent: f32,
    pub rss: u64,
    /// Attempts finished in this slot, and how many of them failed.
    pub done: usize,
    pub failed: usize,
}

/// The life of one persistent worker process, from its start to its exit.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLife {
    pub slot: usize,
    pub pid: u32,
    pub started: Duration,
    pub ready: Option<Duration>,
    pub exited: Option<Duration>,
    /// Items it finished.
    pub items: usize,
    /// Why it went away, and how its process ended.
    pub exit: Option<String>,
    /// It went away with exit status 0 (asked to leave, or recycled), not by a crash or
    /// a kill.
    pub clean_exit: bool,
}

/// A stretch of time one slot's task spent on one core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreSpan {
    pub slot: usize,
    pub seq: usize,
    pub attempt: u32,
    /// The task's process seen there (the first, if several of its processes were).
    pub pid: u32,
    pub start: Duration,
    pub end: Duration,
}

/// Per-core utilization over time, stored by column.
#[derive(Debug, Clone, Default)]
pub struct CoreSeries {
    pub times: Vec<Duration>,
    /// `usage[core][i]` is core's utilization (percent) at `times[i]`.
    pub usage: Vec<Vec<f32>>,
}

/// Tally of the tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub queued: usize,
    pub running: usize,
    pub ok: usize,
    pub failed: usize,
    pub timed_out: usize,
    /// Stopped by poolscope because the run was stopped, killed or halted.
    pub cancelled: usize,
    pub skipped: usize,
}

impl Counts {
    /// Tasks that ended for good (ok, failed, timed out or cancelled).
    pub fn done(&self) -> usize {
        self.ok + self.failed + self.timed_out + self.cancelled
    }
}

/// Why a run shows no speed-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSpeedup {
    /// It has not ended yet.
    Running,
    /// It was stopped, killed or halted before every task had its turn.
    Interrupted,
    /// Not one task succeeded: the times measured how fast things fail.
    NoSuccess,
    /// Its tasks were too short for their summed time to be told from zero against the
    /// run's wall time (the ratio would print as 0.00×).
    TooShort,
}

impl NoSpeedup {
    /// Why, as the faces show it.
    pub fn reason(self) -> &'static str {
        match self {
            NoSpeedup::Running => "the run has not ended",
            NoSpeedup::Interrupted => "the run stopped before every task had run",
            NoSpeedup::NoSuccess => "no task succeeded",
            NoSpeedup::TooShort => "the tasks are too short to time against the run",
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd {
    pub at: Duration,
    pub interrupted: bool,
    /// CPU time poolscope itself used (not its tasks).
    pub self_cpu: Duration,
}

/// Everything the faces show about one run.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub info: Option<Arc<RunInfo>>,
    pub tasks: Vec<TaskStatus>,
    pub slots: Vec<SlotState>,
    /// Every finished attempt, in the order they ended.
    pub attempts: Vec<Arc<AttemptRecord>>,
    pub cores: CoreSeries,
    /// Per core, the spans during which a slot's task ran there.
    pub core_spans: Vec<Vec<CoreSpan>>,
    open_spans: Vec<Option<CoreSpan>>,
    /// Tasks running after each change: (time, count).
    pub busy: Vec<(Duration, u32)>,
    /// CPU of the pool's processes (tasks and persistent workers) at each load sample, in
    /// percent of one core, summed over the slots.
    pub pool_cpu: Vec<(Duration, f32)>,
    /// Every persistent worker of the run, in the order they started.
    pub workers: Vec<WorkerLife>,
    /// Records that could not be written in full, in the order they were found.
    pub lost_records: Vec<LostRecord>,
    /// Time of the latest event.
    pub now: Duration,
    pub end: Option<RunEnd>,
    /// Kept as tasks change, so that faces may ask after every event.
    counts: Counts,
    attempt_time: Duration,
    final_attempts: usize,
}

/// The field of `counts` that `status` falls in.
fn tally<'a>(counts: &'a mut Counts, status: &TaskStatus) -> &'a mut usize {
    match status {
        TaskStatus::Queued => &mut counts.queued,
        TaskStatus::Running { .. } => &mut counts.running,
        TaskStatus::Finished { record } if !record.is_final => &mut counts.queued,
        TaskStatus::Finished { record } => match record.outcome {
            Outcome::Exited { code: 0 } => &mut counts.ok,
            Outcome::TimedOut => &mut counts.timed_out,
            Outcome::Cancelled => &mut counts.cancelled,
            _ => &mut counts.failed,
        },
        TaskStatus::Skipped { .. } => &mut counts.skipped,
    }
}

impl RunState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold one event into the model.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => self.start(info),
            Event::TaskSkipped { seq, reason } => {
                self.set_task(*seq, TaskStatus::Skipped { reason: *reason });
            }
            Event::AttemptStarted {
                key,
                slot,
                pid,
                at,
                output,
            } => self.attempt_started(*key, *slot, *pid, *at, output),
            Event::RecordProblem(lost) => self.lost_records.push(lost.clone()),
            Event::Output { .. } | Event::Summary(_) => {}
            Event::Worker {
                slot,
                pid,
                at,
                change,
            } => self.worker_changed(*slot, *pid, *at, change),
            Event::AttemptFinished(record) => self.attempt_finished(record),
            Event::Placement {
                at,
                placements,
                loads,
            } => {
                self.advance(*at);
                for load in loads {
                    if let Some(s) = self.slot_mut(load.slot) {
                        s.cpu_percent = load.cpu_percent;
                        s.rss = load.rss;
                    }
                }
                if !loads.is_empty() {
                    let total = loads.iter().map(|l| l.cpu_percent).sum();
                    self.pool_cpu.push((*at, total));
                }
                self.place(*at, placements);
            }
            Event::CoreUsage { at, usage } => {
                self.advance(*at);
                self.cores.times.push(*at);
                if self.cores.usage.len() < usage.len() {
                    self.cores.usage.resize(usage.len(), Vec::new());
                }
                let n = self.cores.times.len();
                for (core, series) in self.cores.usage.iter_mut().enumerate() {
                    series.resize(n - 1, 0.0);
                    series.push(usage.get(core).copied().unwrap_or(0.0));
                }
            }
            Event::RunFinished {
                at,
                interrupted,
                self_cpu,
            } => {
                self.advance(*at);
                self.close_spans(*at, |_| true);
                self.end = Some(RunEnd {
                    at: *at,
                    interrupted: *interrupted,
                    self_cpu: *self_cpu,
                });
            }
        }
    }

    fn start(&mut self, info: &Arc<RunInfo>) {
        *self = RunState {
            tasks: vec![TaskStatus::Queued; info.tasks.len()],
            counts: Counts {
                total: info.tasks.len(),
                queued: info.tasks.len(),
                ..Counts::default()
            },
            slots: vec![SlotState::default(); info.config.workers],
            core_spans: vec![Vec::new(); info.cores],
            open_spans: vec![None; info.cores],
            info: Some(Arc::clone(info)),
            ..RunState::default()
        };
    }

    fn worker_changed(&mut self, slot: usize, pid: u32, at: Duration, change: &WorkerChange) {
        self.advance(at);
        match change {
            WorkerChange::Started => self.workers.push(WorkerLife {
                slot,
                pid,
                started: at,
                ready: None,
                exited: None,
                items: 0,
                exit: None,
                clean_exit: false,
            }),
            WorkerChange::Ready => {
                if let Some(w) = self.worker_life(pid) {
                    w.ready = Some(at);
                }
            }
            WorkerChange::Exited { outcome, why } => {
                if let Some(w) = self.worker_life(pid) {
                    w.exited = Some(at);
                    w.exit = Some(format!("{why} ({})", outcome.describe()));
                    w.clean_exit = outcome.is_success();
                }
            }
        }
        if let (WorkerChange::Started, Some(s)) = (change, self.slot_mut(slot)) {
            s.last_pid = Some(pid);
        }
    }

    /// The persistent workers `slot` has had, oldest first.
    pub fn slot_workers(&self, slot: usize) -> impl Iterator<Item = &WorkerLife> {
        self.workers.iter().filter(move |w| w.slot == slot)
    }

    /// The persistent worker living in `slot` now, if any.
    pub fn live_worker(&self, slot: usize) -> Option<&WorkerLife> {
        self.workers
            .iter()
            .rev()
            .find(|w| w.slot == slot)
            .filter(|w| w.exited.is_none())
    }

    /// The latest worker with `pid`.
    fn worker_life(&mut self, pid: u32) -> Option<&mut WorkerLife> {
        self.workers.iter_mut().rev().find(|w| w.pid == pid)
    }

    /// Set task `seq`'s status, keeping the tally.
    fn set_task(&mut self, seq: usize, status: TaskStatus) {
        let Some(t) = seq.checked_sub(1).and_then(|i| self.tasks.get_mut(i)) else {
            return;
        };
        *tally(&mut self.counts, t) -= 1;
        *tally(&mut self.counts, &status) += 1;
        *t = status;
    }

    fn slot_mut(&mut self, slot: usize) -> Option<&mut SlotState> {
        slot.checked_sub(1).and_then(|i| self.slots.get_mut(i))
    }

    fn advance(&mut self, at: Duration) {
        self.now = self.now.max(at);
    }

    fn attempt_started(
        &mut self,
        key: AttemptKey,
        slot: usize,
        pid: u32,
        at: Duration,
        output: &LiveOutput,
    ) {
        self.advance(at);
        // Started again on a fresh worker (the one it was sent to recycled itself): the
        // slot was busy with it all along.
        let again = self
            .slots
            .get(slot.wrapping_sub(1))
            .and_then(|s| s.current.as_ref())
            .is_some_and(|c| c.key == key);
        if !again {
            self.count_busy(at, 1);
        }
        self.set_task(
            key.seq,
            TaskStatus::Running {
                attempt: key.attempt,
                slot,
                pid,
                started: at,
            },
        );
        if let Some(s) = self.slot_mut(slot) {
            s.current = Some(SlotRun {
                key,
                pid,
                since: at,
                output: output.clone(),
            });
            s.last_pid = Some(pid);
            s.cpu_percent = 0.0;
            s.rss = 0;
        }
    }

    fn attempt_finished(&mut self, record: &Arc<AttemptRecord>) {
        self.advance(record.ended);
        self.lost_records.extend(record.lost.iter().cloned());
        let was_running = self
            .slots
            .get(record.slot.wrapping_sub(1))
            .and_then(|s| s.current.as_ref())
            .is_some_and(|c| c.key == record.key);
        if was_running {
            self.count_busy(record.ended, -1);
        }
        self.set_task(
            record.key.seq,
            TaskStatus::Finished {
                record: Arc::clone(record),
            },
        );
        self.attempt_time += record.wall();
        if record.is_final {
            self.final_attempts += 1;
        }
        let worker_lives_on = match self.worker_life(record.pid) {
            Some(w) if record.pid != 0 => {
                w.items += 1;
                w.exited.is_none()
            }
            _ => false,
        };
        if let Some(s) = self.slot_mut(record.slot) {
            if s.current.as_ref().is_some_and(|c| c.key == record.key) {
                s.current = None;
            }
            s.done += 1;
            if record.outcome.is_failure() {
                s.failed += 1;
            }
            // A persistent worker stays loaded between its items.
            if !worker_lives_on {
                s.cpu_percent = 0.0;
                s.rss = 0;
            }
        }
        let slot = record.slot;
        self.close_spans(record.ended, |span| span.slot == slot);
        self.attempts.push(Arc::clone(record));
    }

    /// Extend or start the per-core spans from a placement sample.
    fn place(&mut self, at: Duration, placements: &[Placement]) {
        // Per core, the first process seen there of a slot running an attempt (a
        // persistent worker between items holds no core for a task), with that attempt.
        let mut occupant: Vec<Option<(usize, u32, AttemptKey)>> = vec![None; self.open_spans.len()];
        for p in placements {
            let current = p
                .slot
                .checked_sub(1)
                .and_then(|i| self.slots.get(i)?.current.as_ref());
            if let (Some(c), Some(o)) = (current, occupant.get_mut(p.core)) {
                o.get_or_insert((p.slot, p.pid, c.key));
            }
        }
        for (core, current) in occupant.into_iter().enumerate() {
            let open = &mut self.open_spans[core];
            match (open.as_mut(), current) {
                (Some(span), Some((slot, _, key)))
                    if span.slot == slot && span.seq == key.seq && span.attempt == key.attempt =>
                {
                    span.end = at;
                }
                _ => {
                    if let Some(span) = open.take() {
                        self.core_spans[core].push(span);
                    }
                    if let Some((slot, pid, key)) = current {
                        self.open_spans[core] = Some(CoreSpan {
                            slot,
                            seq: key.seq,
                            attempt: key.attempt,
                            pid,
                            start: at,
                            end: at,
                        });
                    }
                }
            }
        }
    }

    /// How the attempt of `span` ended, or `None` while it runs.
    pub fn span_outcome(&self, span: &CoreSpan) -> Option<&Outcome> {
        let latest = match self.tasks.get(span.seq.checked_sub(1)?)? {
            TaskStatus::Finished { record } if record.key.attempt == span.attempt => {
                return Some(&record.outcome);
            }
            TaskStatus::Finished { record } => record.key.attempt,
            TaskStatus::Running { attempt, .. } => *attempt,
            // A retry skipped by a halt or a stop: every attempt that ran has ended.
            TaskStatus::Skipped { .. } => u32::MAX,
            TaskStatus::Queued => return None,
        };
        if latest <= span.attempt {
            return None;
        }
        // A later attempt followed this one: its record is among the finished attempts.
        self.attempts
            .iter()
            .rev()
            .find(|a| a.key.seq == span.seq && a.key.attempt == span.attempt)
            .map(|a| &a.outcome)
    }

    fn close_spans(&mut self, at: Duration, which: impl Fn(&CoreSpan) -> bool) {
        for (core, open) in self.open_spans.iter_mut().enumerate() {
            if open.as_ref().is_some_and(&which)
                && let Some(mut span) = open.take()
            {
                span.end = span.end.max(at.min(span.end + Duration::from_millis(50)));
                self.core_spans[core].push(span);
            }
        }
    }

    fn count_busy(&mut self, at: Duration, delta: i32) {
        let now = self.busy.last().map_or(0, |&(_, n)| n);
        let next = now.saturating_add_signed(delta);
        self.busy.push((at, next));
    }

    /// Per core, the span still open (a task on it now).
    pub fn open_spans(&self) -> &[Option<CoreSpan>] {
        &self.open_spans
    }

    /// A task's name, or `""` if unknown.
    pub fn task_name(&self, seq: usize) -> &str {
        self.info
            .as_ref()
            .and_then(|i| i.tasks.get(seq.wrapping_sub(1)))
            .map_or("", |t| t.name.as_str())
    }

    /// `#7 resize-photos`, or just `#7` when the name is the number itself (`range` tasks).
    pub fn task_label(&self, seq: usize) -> String {
        let name = self.task_name(seq);
        if name == seq.to_string() || name.is_empty() {
            format!("#{seq}")
        } else {
            format!("#{seq} {name}")
        }
    }

    /// The tally of tasks now.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Wall time of the run so far (or in all, once it ended).
    pub fn elapsed(&self) -> Duration {
        self.end.map_or(self.now, |e| e.at)
    }

    /// Summed wall time of every finished attempt: the serial estimate.
    pub fn task_time(&self) -> Duration {
        self.attempt_time
    }

    /// Estimated serial time over wall time, for a run that ended complete.
    pub fn speedup(&self) -> Option<f64> {
        self.speedup_or_why().ok()
    }

    /// Estimated serial time over wall time, or why the run shows none: only a run that
    /// ended without being stopped, with at least one success, has one.
    pub fn speedup_or_why(&self) -> Result<f64, NoSpeedup> {
        let end = self.end.ok_or(NoSpeedup::Running)?;
        let c = self.counts;
        let cut_short = c.skipped > 0
            && self.tasks.iter().any(|t| {
                matches!(
                    t,
                    TaskStatus::Skipped {
                        reason: SkipReason::Halted | SkipReason::Stopped
                    }
                )
            });
        // Cancelled tasks: stopped, killed, or cut off by a halt after a failure.
        if end.interrupted || c.queued + c.running + c.cancelled > 0 || cut_short {
            return Err(NoSpeedup::Interrupted);
        }
        if c.ok == 0 {
            return Err(NoSpeedup::NoSuccess);
        }
        let wall = self.elapsed().as_secs_f64();
        let speedup = self.task_time().as_secs_f64() / wall.max(f64::MIN_POSITIVE);
        if wall <= 0.0 || speedup < 0.005 {
            return Err(NoSpeedup::TooShort);
        }
        Ok(speedup)
    }

    /// Time left, from the mean attempt so far and the free parallelism.
    pub fn eta(&self) -> Option<Duration> {
        if self.end.is_some() {
            return Some(Duration::ZERO);
        }
        let c = self.counts();
        if self.final_attempts == 0 {
            return None;
        }
        let mean = self.task_time().as_secs_f64() / self.attempts.len() as f64;
        let workers = self.slots.len().max(1) as f64;
        let left = (c.queued + c.running) as f64;
        Some(Duration::from_secs_f64(
            mean * (left / workers).ceil().max(0.0),
        ))
    }

    /// Final attempts that failed (not those cancelled by a stop), in task order.
    pub fn failures(&self) -> Vec<Arc<AttemptRecord>> {
        self.tasks
            .iter()
            .filter_map(|t| match t {
                TaskStatus::Finished { record }
                    if record.is_final && record.outcome.is_failure() =>
                {
                    Some(Arc::clone(record))
                }
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
