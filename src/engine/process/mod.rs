//! Running attempts as process groups, one thread per busy worker slot.
//!
//! A slot's thread starts each command in a process group of its own (see
//! [`super::child`]), then polls the two output pipes and the process's pidfd at once
//! (`pump.rs`). When the process exits it is reaped with `wait4` (exit status and rusage),
//! whatever is left of its process group is killed, and the pipes are drained; if they stay
//! open, something escaped the group while holding them, so the processes carrying the
//! attempt's marker are killed too (see [`crate::guard`]). A slot is handed an order only
//! when it is free, and reports each attempt's start and end the moment they happen.

mod attempt;
mod pump;
mod room;

pub use room::is_transient;

use std::io;
use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Sender;
use nix::sys::signal::Signal;

use super::child;
use super::clock::RunClock;
use super::launcher::{AttemptOrder, LaunchMsg, Launcher};
use super::panics;
use crate::event::{AttemptKey, AttemptRecord};
use crate::guard::RunMarker;

/// What every attempt of a run shares.
#[derive(Debug)]
pub struct RunContext {
    pub run_dir: Arc<Path>,
    pub marker: RunMarker,
    pub output_cap: u64,
    pub clock: RunClock,
    /// Attempts whose process runs: a refused start waits for one to end.
    pub running: room::Running,
}

/// Runs each attempt as a process group, on one thread per worker slot (started on the
/// slot's first attempt and kept while the run has work for it).
pub struct ProcessLauncher {
    ctx: Arc<RunContext>,
    replies: Sender<LaunchMsg>,
    /// Per slot, the channel its thread takes orders from.
    slots: Vec<Option<Sender<AttemptOrder>>>,
}

impl ProcessLauncher {
    pub fn new(ctx: Arc<RunContext>, replies: Sender<LaunchMsg>) -> Self {
        ProcessLauncher {
            ctx,
            replies,
            slots: Vec::new(),
        }
    }

    /// The channel of `slot`'s thread, started if it is not running.
    fn slot_thread(
        &mut self,
        slot: usize,
        core: Option<usize>,
    ) -> io::Result<&Sender<AttemptOrder>> {
        if self.slots.len() < slot {
            self.slots.resize_with(slot, || None);
        }
        let entry = &mut self.slots[slot - 1];
        if entry.is_none() {
            let (orders, incoming) = crossbeam_channel::unbounded::<AttemptOrder>();
            let ctx = Arc::clone(&self.ctx);
            let replies = self.replies.clone();
            std::thread::Builder::new()
                .name(format!("poolscope-slot-{slot}"))
                .spawn(move || {
                    let served = panics::catch(|| {
                        if let Some(core) = core {
                            child::pin_this_thread(core);
                        }
                        let mut buf = vec![0u8; 64 * 1024];
                        for order in incoming {
                            panics::injected("slot");
                            let record = attempt::run(&order, &ctx, &replies, &mut buf);
                            let _ = replies.send(LaunchMsg::Finished(record));
                        }
                    });
                    if let Err(panic) = served {
                        let _ = replies.send(LaunchMsg::Panicked(panic));
                    }
                })?;
            *entry = Some(orders);
        }
        entry
            .as_ref()
            .ok_or_else(|| io::Error::other("slot thread missing"))
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, order: AttemptOrder) {
        let (key, slot) = (order.key, order.slot);
        let sent = match self.slot_thread(slot, order.core) {
            Ok(orders) => orders
                .send(order)
                .map_err(|_| io::Error::other("slot thread ended")),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            if let Some(entry) = self.slots.get_mut(slot - 1) {
                *entry = None;
            }
            let at = self.ctx.clock.now();
            let record =
                AttemptRecord::not_started(key, slot, at, format!("no thread to run it: {e}"));
            let _ = self.replies.send(LaunchMsg::Finished(Box::new(record)));
        }
    }

    fn retract(&mut self, _slot: usize) -> Option<AttemptOrder> {
        // An order is handed over only to a free slot, which starts it at once.
        None
    }

    fn resume(&mut self, _slot: usize) {}

    fn retire(&mut self, slot: usize) {
        // Its thread ends once its channel is closed (it holds no order, or the slot would
        // not be idle).
        if let Some(entry) = slot.checked_sub(1).and_then(|i| self.slots.get_mut(i)) {
            *entry = None;
        }
    }

    /// None: a slot is handed its next task only once it is free.
    fn depth(&self) -> usize {
        0
    }

    fn signal(&mut self, _key: AttemptKey, pid: u32, signal: Signal) {
        child::signal_group(pid, signal);
    }
}
