//! The scheduler's ordering, retries, halting and stopping, on a launcher with scripted
//! outcomes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, unbounded};
use nix::sys::signal::Signal;

use super::*;
use crate::engine::launcher::AttemptOrder;
use crate::event::LiveOutput;
use crate::task::Program;

/// A launcher whose attempts end at once with scripted outcomes, or hang until signalled.
/// It keeps each slot's waiting order, and holds it after a failure until resumed, as the
/// real launcher does.
struct Scripted {
    replies: Sender<LaunchMsg>,
    fail: BTreeSet<(usize, u32)>,
    hang: BTreeSet<usize>,
    /// Tasks that succeed 30 ms after they start, from another thread.
    slow: BTreeSet<usize>,
    launched: Arc<Mutex<Vec<(AttemptKey, usize)>>>,
    signals: Arc<Mutex<Vec<(AttemptKey, Signal)>>>,
    slots: BTreeMap<usize, ScriptedSlot>,
    /// Slots retired, each with whether it still ran or held an order then.
    retired: Arc<Mutex<Vec<(usize, bool)>>>,
    /// The run's clock: `Started` says when, as the real launchers do.
    clock: RunClock,
    /// Orders a slot may hold waiting behind its running one.
    depth: usize,
    /// Orders handed to a slot that was running another, with that slot.
    busy_launches: Arc<Mutex<Vec<(AttemptKey, usize)>>>,
}

#[derive(Default)]
struct ScriptedSlot {
    running: Option<AttemptKey>,
    waiting: Option<AttemptOrder>,
    held: bool,
}

fn record(key: AttemptKey, slot: usize, outcome: Outcome) -> AttemptRecord {
    AttemptRecord {
        pid: 1000 + key.seq as u32,
        signal: match outcome {
            Outcome::Signaled { signal } => Some(signal),
            _ => None,
        },
        outcome,
        stderr_tail: String::new(),
        ..AttemptRecord::not_started(key, slot, Duration::ZERO, String::new())
    }
}

impl Scripted {
    /// Start waiting orders on `slot` while it is free to.
    fn pump(&mut self, slot: usize) {
        loop {
            let s = self.slots.entry(slot).or_default();
            if s.running.is_some() || s.held {
                return;
            }
            let Some(order) = s.waiting.take() else {
                return;
            };
            self.start(order);
        }
    }

    fn start(&mut self, order: AttemptOrder) {
        let key = order.key;
        self.launched.lock().expect("lock").push((key, order.slot));
        let output = LiveOutput {
            stdout: Arc::default(),
            stderr: Arc::default(),
        };
        let _ = self.replies.send(LaunchMsg::Started {
            key,
            pid: 1000 + key.seq as u32,
            at: self.clock.now(),
            output,
        });
        let slot = self.slots.entry(order.slot).or_default();
        if self.hang.contains(&key.seq) {
            slot.running = Some(key);
            return;
        }
        if self.slow.contains(&key.seq) {
            slot.running = Some(key);
            let replies = self.replies.clone();
            let finished = record(key, order.slot, Outcome::Exited { code: 0 });
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let _ = replies.send(LaunchMsg::Finished(Box::new(finished)));
            });
            return;
        }
        let failed = self.fail.contains(&(key.seq, key.attempt));
        slot.held = failed;
        let finished = record(
            key,
            order.slot,
            Outcome::Exited {
                code: i32::from(failed),
            },
        );
        let _ = self.replies.send(LaunchMsg::Finished(Box::new(finished)));
    }
}

impl Launcher for Scripted {
    fn launch(&mut self, order: AttemptOrder) {
        let slot = order.slot;
        if self.slots.get(&slot).is_some_and(|s| s.running.is_some()) {
            self.busy_launches
                .lock()
                .expect("lock")
                .push((order.key, slot));
        }
        self.slots.entry(slot).or_default().waiting = Some(order);
        self.pump(slot);
    }

    fn retract(&mut self, slot: usize) -> Option<AttemptOrder> {
        self.slots.get_mut(&slot)?.waiting.take()
    }

    fn resume(&mut self, slot: usize) {
        self.slots.entry(slot).or_default().held = false;
        self.pump(slot);
    }

    fn retire(&mut self, slot: usize) {
        // A slow task's end, sent from its own thread, does not clear `running` here.
        let busy = self.slots.get(&slot).is_some_and(|s| {
            s.waiting.is_some() || s.running.is_some_and(|k| !self.slow.contains(&k.seq))
        });
        self.retired.lock().expect("lock").push((slot, busy));
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn signal(&mut self, key: AttemptKey, _pid: u32, signal: Signal) {
        self.signals.lock().expect("lock").push((key, signal));
        let Some((&slot, s)) = self.slots.iter_mut().find(|(_, s)| s.running == Some(key)) else {
            return;
        };
        s.running = None;
        s.held = true;
        let ended = record(
            key,
            slot,
            Outcome::Signaled {
                signal: signal as i32,
            },
        );
        let _ = self.replies.send(LaunchMsg::Finished(Box::new(ended)));
    }
}

struct Outcomes {
    events: Vec<Event>,
    launched: Vec<(AttemptKey, usize)>,
    signals: Vec<(AttemptKey, Signal)>,
    retired: Vec<(usize, bool)>,
    busy_launches: Vec<(AttemptKey, usize)>,
    interrupted: bool,
}

impl Outcomes {
    fn finished(&self) -> BTreeMap<AttemptKey, Arc<AttemptRecord>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::AttemptFinished(r) => Some((r.key, Arc::clone(r))),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self) -> Vec<(usize, SkipReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::TaskSkipped { seq, reason } => Some((*seq, *reason)),
                _ => None,
            })
            .collect()
    }
}

fn key(seq: usize, attempt: u32) -> AttemptKey {
    AttemptKey { seq, attempt }
}

/// Run `n` tasks on a scripted launcher that takes `depth` orders waiting behind a
/// running one (0, as for processes; more, as for persistent workers of tiny items).
#[allow(clippy::too_many_arguments)]
fn schedule(
    n: usize,
    config: PoolConfig,
    fail: &[(usize, u32)],
    hang: &[usize],
    slow: &[usize],
    controls: &[Control],
    timeout: Option<Duration>,
    depth: usize,
) -> Outcomes {
    let tasks: Vec<Arc<Task>> = (1..=n)
        .map(|seq| {
            Arc::new(Task {
                seq,
                name: format!("t{seq}"),
                program: Program::Argv(vec!["true".into()]),
                input: std::ffi::OsString::new(),
                env: vec![],
                cwd: PathBuf::from("/"),
                timeout,
            })
        })
        .collect();
    let (reply_tx, replies) = unbounded();
    let (control_tx, control_rx) = unbounded();
    for c in controls {
        control_tx.send(*c).expect("send");
    }
    let launched = Arc::new(Mutex::new(Vec::new()));
    let signals = Arc::new(Mutex::new(Vec::new()));
    let retired = Arc::new(Mutex::new(Vec::new()));
    let busy_launches = Arc::new(Mutex::new(Vec::new()));
    let clock = RunClock::start();
    let launcher = Scripted {
        replies: reply_tx,
        fail: fail.iter().copied().collect(),
        hang: hang.iter().copied().collect(),
        slow: slow.iter().copied().collect(),
        launched: Arc::clone(&launched),
        signals: Arc::clone(&signals),
        slots: BTreeMap::new(),
        retired: Arc::clone(&retired),
        clock,
        depth,
        busy_launches: Arc::clone(&busy_launches),
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let scheduler = Scheduler::new(
        Arc::new(tasks),
        (0..n).collect(),
        config,
        2,
        launcher,
        Inputs {
            replies,
            controls: control_rx,
            samples: crossbeam_channel::never(),
        },
        Box::new(move |e| sink.lock().expect("lock").push(e)),
        clock,
    );
    let interrupted = scheduler.run();
    let events = events.lock().expect("lock").clone();
    let launched = launched.lock().expect("lock").clone();
    let signals = signals.lock().expect("lock").clone();
    let retired = retired.lock().expect("lock").clone();
    let busy_launches = busy_launches.lock().expect("lock").clone();
    Outcomes {
        events,
        launched,
        signals,
        retired,
        busy_launches,
        interrupted,
    }
}

fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        workers,
        ..PoolConfig::default()
    }
}

#[test]
fn tasks_start_in_listed_order_in_the_lowest_free_slot() {
    let out = schedule(4, config(2), &[], &[], &[], &[], None, 0);
    let keys: Vec<usize> = out.launched.iter().map(|(k, _)| k.seq).collect();
    assert_eq!(keys, [1, 2, 3, 4]);
    assert_eq!(out.launched[0].1, 1);
    assert_eq!(out.launched[1].1, 2);
    assert!(out.finished().values().all(|r| r.is_final));
    assert!(!out.interrupted);
}

#[test]
fn a_failed_attempt_is_retried_before_later_tasks() {
    let mut c = config(1);
    c.retries = 1;
    let out = schedule(3, c, &[(2, 1)], &[], &[], &[], None, 0);
    let keys: Vec<AttemptKey> = out.launched.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [key(1, 1), key(2, 1), key(2, 2), key(3, 1)]);
    let finished = out.finished();
    assert!(!finished[&key(2, 1)].is_final);
    assert!(finished[&key(2, 2)].is_final);
}

#[test]
fn retries_run_out() {
    let mut c = config(1);
    c.retries = 1;
    let out = schedule(1, c, &[(1, 1), (1, 2)], &[], &[], &[], None, 0);
    assert_eq!(out.launched.len(), 2);
    let last = &out.finished()[&key(1, 2)];
    assert!(last.is_final);
    assert_eq!(last.outcome, Outcome::Exited { code: 1 });
}

#[test]
fn halt_soon_skips_the_rest_after_a_final_failure() {
    let mut c = config(1);
    c.halt = Halt::Soon;
    let out = schedule(4, c, &[(2, 1)], &[], &[], &[], None, 0);
    assert_eq!(out.launched.len(), 2);
    assert_eq!(
        out.skipped(),
        [(3, SkipReason::Halted), (4, SkipReason::Halted)]
    );
}

#[test]
fn halt_now_cancels_what_runs() {
    let mut c = config(2);
    c.halt = Halt::Now;
    let out = schedule(3, c, &[(2, 1)], &[1], &[], &[], None, 0);
    assert_eq!(out.signals, [(key(1, 1), Signal::SIGTERM)]);
    assert_eq!(out.finished()[&key(1, 1)].outcome, Outcome::Cancelled);
    assert_eq!(out.skipped(), [(3, SkipReason::Halted)]);
}

#[test]
fn stop_lets_running_tasks_finish_and_starts_no_more() {
    let out = schedule(3, config(1), &[], &[], &[1], &[Control::Stop], None, 0);
    assert_eq!(out.launched.len(), 1);
    assert!(out.signals.is_empty());
    assert_eq!(
        out.skipped(),
        [(2, SkipReason::Stopped), (3, SkipReason::Stopped)]
    );
    assert!(out.interrupted);
}

#[test]
fn kill_cancels_running_tasks() {
    let out = schedule(2, config(1), &[], &[1], &[], &[Control::Kill], None, 0);
    assert_eq!(out.signals, [(key(1, 1), Signal::SIGTERM)]);
    assert_eq!(out.finished()[&key(1, 1)].outcome, Outcome::Cancelled);
    assert_eq!(out.skipped(), [(2, SkipReason::Stopped)]);
}

#[test]
fn a_task_past_its_time_limit_is_timed_out() {
    let out = schedule(
        2,
        config(1),
        &[],
        &[1],
        &[],
        &[],
        Some(Duration::from_millis(20)),
        0,
    );
    assert_eq!(out.signals, [(key(1, 1), Signal::SIGTERM)]);
    let finished = out.finished();
    assert_eq!(finished[&key(1, 1)].outcome, Outcome::TimedOut);
    assert_eq!(finished[&key(2, 1)].outcome, Outcome::Exited { code: 0 });
}

/// Task 1 hangs on slot 1 until its time limit, with a launcher that takes `depth` orders
/// waiting behind a running one; every other task must run on slot 2.
fn with_a_hung_task_on_slot_1(depth: usize) -> Outcomes {
    let mut c = config(2);
    c.timeout = Some(Duration::from_millis(300));
    let out = schedule(4, c, &[], &[1], &[], &[], None, depth);
    let by_key: BTreeMap<AttemptKey, usize> = out.launched.iter().copied().collect();
    assert_eq!(by_key[&key(1, 1)], 1);
    for seq in 2..=4 {
        assert_eq!(
            by_key[&key(seq, 1)],
            2,
            "task {seq} waited behind the hung task"
        );
    }
    out
}

#[test]
fn no_task_is_bound_to_a_busy_slot() {
    // As for processes: none is handed to slot 1 while task 1 runs there, and tasks start
    // in listed order.
    let out = with_a_hung_task_on_slot_1(0);
    assert!(out.busy_launches.is_empty(), "{:?}", out.busy_launches);
    let keys: Vec<usize> = out.launched.iter().map(|(k, _)| k.seq).collect();
    assert_eq!(keys, [1, 2, 3, 4]);
}

#[test]
fn a_free_slot_takes_over_an_order_waiting_behind_a_long_task() {
    // With orders held behind running ones (persistent workers of tiny items), task 3 is
    // queued behind task 1; slot 2 takes it back when it has nothing else to do.
    let out = with_a_hung_task_on_slot_1(1);
    assert!(
        out.busy_launches
            .iter()
            .any(|(k, slot)| *k == key(3, 1) && *slot == 1),
        "task 3 was never queued behind task 1: {:?}",
        out.busy_launches
    );
}

#[test]
fn cancelled_attempts_are_not_retried() {
    let mut c = config(1);
    c.retries = 3;
    let out = schedule(1, c, &[], &[1], &[], &[Control::Kill], None, 0);
    assert_eq!(out.launched.len(), 1);
    assert!(out.finished()[&key(1, 1)].is_final);
}

#[test]
fn idle_slots_are_retired_once_nothing_is_left_and_a_retry_still_runs() {
    // Task 4 is slow, so the other slot goes idle with an empty queue; task 3 fails once
    // and its retry comes after slots were retired.
    let mut c = config(2);
    c.retries = 1;
    let out = schedule(4, c, &[(3, 1)], &[], &[4], &[], None, 0);
    let finished = out.finished();
    assert!(finished[&key(3, 2)].outcome.is_success());
    assert!(finished.values().filter(|r| r.is_final).count() == 4);
    assert!(!out.retired.is_empty(), "no slot was retired");
    assert!(
        out.retired.iter().all(|(_, busy)| !busy),
        "a slot was retired while it ran or held an order: {:?}",
        out.retired
    );
    let slots: BTreeSet<usize> = out.retired.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, BTreeSet::from([1, 2]));
}
