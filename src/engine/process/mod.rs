//! Running attempts as process groups, one thread per worker slot.
//!
//! A slot's thread spawns each command in a process group of its own (`spawn.rs`: a
//! vfork-style clone, so spawning stays cheap even from a large parent), then polls the
//! two output pipes and the process's pidfd at once (`pump.rs`). When the process exits
//! it is reaped with `wait4` (exit status and rusage), whatever is left of its process
//! group is killed, and the pipes are drained; if they stay open, something escaped the
//! group while holding them, so the processes carrying the attempt's marker are killed too
//! (see [`crate::guard`]).

mod attempt;
mod pump;
mod spawn;

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::clock::RunClock;
use super::launcher::{AttemptOrder, LaunchMsg, Launcher};
use super::resolve::Resolver;
use crate::event::{AttemptKey, AttemptRecord};
use crate::guard::RunMarker;
use attempt::start_attempt;
use pump::{Held, ReadBuf};
pub use spawn::Environment;

/// What every attempt of a run shares.
#[derive(Debug)]
pub struct RunContext {
    pub run_dir: Arc<Path>,
    pub marker: RunMarker,
    pub output_cap: u64,
    pub clock: RunClock,
    /// When (on the run's clock) the monitor started sampling which core each task is on.
    pub monitor_since: std::sync::OnceLock<std::time::Duration>,
    /// Programs found on `PATH`, for every slot of the run.
    pub programs: Resolver,
    /// poolscope's environment as the run started: every task's starts from it.
    pub environment: Environment,
}

/// Runs each attempt as a process group, on one thread per worker slot (started on the
/// slot's first attempt and kept, so a new attempt costs no thread creation).
pub struct ProcessLauncher {
    ctx: Arc<RunContext>,
    replies: Sender<LaunchMsg>,
    slots: Vec<Option<SlotThread>>,
}

/// A worker slot's thread: the orders it has not started yet (the slot's next attempt
/// and at most one behind it, see [`Launcher::depth`]), and a channel to wake it.
struct SlotThread {
    waiting: Arc<Mutex<VecDeque<AttemptOrder>>>,
    wake: Sender<Wake>,
}

/// Why a slot thread is woken.
enum Wake {
    /// Look for a waiting order.
    Look,
    /// The last attempt failed and the scheduler has decided: carry on.
    Resume,
}

impl ProcessLauncher {
    pub fn new(ctx: Arc<RunContext>, replies: Sender<LaunchMsg>) -> Self {
        ProcessLauncher {
            ctx,
            replies,
            slots: Vec::new(),
        }
    }

    /// Start `slot`'s thread with `order` already waiting, so that the thread finds it as
    /// it starts instead of blocking until it is woken.
    fn start_slot_thread(&mut self, slot: usize, order: AttemptOrder) -> io::Result<()> {
        if self.slots.len() < slot {
            self.slots.resize_with(slot, || None);
        }
        let core = order.core;
        let (wake, woken) = crossbeam_channel::unbounded();
        let waiting = Arc::new(Mutex::new(VecDeque::from([order])));
        let mailbox = Arc::clone(&waiting);
        let ctx = Arc::clone(&self.ctx);
        let replies = self.replies.clone();
        std::thread::Builder::new()
            .name(format!("poolscope-slot-{slot}"))
            .stack_size(256 * 1024)
            .spawn(move || slot_loop(&mailbox, &woken, core, &ctx, &replies))?;
        self.slots[slot - 1] = Some(SlotThread { waiting, wake });
        Ok(())
    }
}

/// A slot thread: run waiting orders one after the other; after a failure, wait to be
/// resumed. Ends when the launcher is dropped.
///
/// A successful attempt is reported once the slot's next waiting order has started, with
/// that one's `Started`, both held back while it starts up (see [`pump::Held`]); at once
/// if no order waits. A failed one is reported at once: the slot waits for the
/// scheduler's decision.
fn slot_loop(
    waiting: &Mutex<VecDeque<AttemptOrder>>,
    woken: &crossbeam_channel::Receiver<Wake>,
    core: Option<usize>,
    ctx: &RunContext,
    replies: &Sender<LaunchMsg>,
) {
    if let Some(core) = core {
        // Children inherit the spawning thread's affinity.
        pin_this_thread(core);
    }
    let mut buf = ReadBuf::new();
    let mut gate_open = true;
    let mut unreported: Option<Box<AttemptRecord>> = None;
    let report = |record: Box<AttemptRecord>| {
        let _ = replies.send(LaunchMsg::Finished(record));
    };
    loop {
        let next = if gate_open {
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
        } else {
            None
        };
        let Some(order) = next else {
            if let Some(record) = unreported.take() {
                report(record);
                // The scheduler may hand over an order in answer: look again first.
                continue;
            }
            match woken.recv() {
                Ok(Wake::Look) => {}
                Ok(Wake::Resume) => gate_open = true,
                Err(_) => return,
            }
            continue;
        };
        let record = match start_attempt(&order, ctx) {
            Ok(running) => {
                let held = unreported
                    .take()
                    .map(LaunchMsg::Finished)
                    .into_iter()
                    .chain([running.started()])
                    .collect();
                running.finish(ctx, replies, &mut buf, Held::new(held))
            }
            Err(not_started) => {
                if let Some(record) = unreported.take() {
                    report(record);
                }
                not_started
            }
        };
        gate_open = record.outcome.is_success();
        if gate_open {
            unreported = Some(record);
        } else {
            report(record);
        }
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, order: AttemptOrder) {
        let (key, slot) = (order.key, order.slot);
        let running = slot
            .checked_sub(1)
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref);
        let queued = match running {
            Some(thread) => {
                thread
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(order);
                thread
                    .wake
                    .send(Wake::Look)
                    .map_err(|_| io::Error::other("slot thread ended"))
            }
            None => self.start_slot_thread(slot, order),
        };
        if let Err(e) = queued {
            self.slots[slot - 1] = None;
            let at = self.ctx.clock.now();
            let record =
                AttemptRecord::not_started(key, slot, at, format!("no thread to run it: {e}"));
            let _ = self.replies.send(LaunchMsg::Finished(Box::new(record)));
        }
    }

    fn retract(&mut self, slot: usize) -> Option<AttemptOrder> {
        let thread = self.slots.get(slot.checked_sub(1)?)?.as_ref()?;
        // The order behind the slot's current one is always the last handed over.
        thread
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_back()
    }

    fn resume(&mut self, slot: usize) {
        if let Some(Some(thread)) = slot.checked_sub(1).and_then(|i| self.slots.get(i)) {
            let _ = thread.wake.send(Wake::Resume);
        }
    }

    fn retire(&mut self, slot: usize) {
        // Its thread ends once it sees its wake channel closed (it holds no order, or the
        // slot would not be idle). Ended now, it is not there to end with the process.
        if let Some(entry) = slot.checked_sub(1).and_then(|i| self.slots.get_mut(i)) {
            *entry = None;
        }
    }

    /// Two: as an attempt ends the slot starts the next at once, and one more waits behind
    /// it while the scheduler hears of that (the slot holds its reports back for a moment
    /// while the new task starts up), so a short task does not leave its slot waiting for
    /// the scheduler.
    fn depth(&self) -> usize {
        2
    }

    fn signal(&mut self, _key: AttemptKey, pid: u32, signal: Signal) {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}

fn pin_this_thread(core: usize) {
    let mut set = CpuSet::new();
    if set.set(core).is_ok() {
        // Children inherit the spawning thread's affinity.
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}
