//! Persistent workers (DESIGN §3): a [`Launcher`] that keeps one long-lived worker process
//! per slot and feeds it items over the worker protocol instead of starting a process per
//! task.
//!
//! Each slot has a thread (`slot/`) that owns the slot's worker: it starts it, sends it
//! the orders the scheduler queued on the slot, reads its replies, its stdout and stderr,
//! and notices its death, all in one `poll`. The scheduler's orders wait in a mailbox the
//! thread drains; an order can be taken back while it is still there.
//!
//! How many items a worker holds at once adapts to how long its items take: one (the item
//! it is on) until its items are measured to take less than a millisecond, then enough to
//! cover about 2 ms of work (at most [`DEPTH`]), so tiny items cost no round trip each
//! while an item of a millisecond or more is bound to a worker only when it is free. A worker that prints is fed
//! one item at a time, so each print lands with the item that made it: an item's output is
//! everything read from the worker's stdout and stderr up to its reply (the Python adapter
//! flushes both before replying), and the next item is sent only after that. Workers that
//! are not built in start that way and get more only after their first items came back
//! without a print; a rare print after that may land with a neighbouring item, and puts
//! the worker back to one item at a time.
//!
//! Failed worker starts are counted across the slots (`starts`): two in a row that fail
//! alike end the run's starts, and the items left fail at once with that error. A start
//! the system refuses for a moment (EMFILE, EAGAIN, ...) fails nothing while another slot
//! can take the item: the scheduler gives it to one ([`LaunchMsg::NoRoom`]).

mod slot;
mod spawn;
mod starts;

use nix::sys::eventfd::{EfdFlags, EventFd};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use nix::sys::signal::Signal;

use super::launcher::{AttemptOrder, LaunchMsg, Launcher};
use super::process::RunContext;
use crate::event::{AttemptKey, AttemptRecord};
use crate::worker::WorkerSpec;

/// Orders a slot may hold beyond its running one (in its mailbox and its worker's pipe).
pub const DEPTH: usize = 256;

/// What every worker of a run shares.
#[derive(Debug)]
pub struct WorkerContext {
    pub run: Arc<RunContext>,
    pub spec: WorkerSpec,
    /// The `poolscope` executable, which serves built-in kernels.
    pub poolscope: PathBuf,
    /// Recycle a worker after this many items; 0 never.
    pub max_tasks: u32,
    /// The pool's time limit per item; a worker must also be ready within its item's.
    pub timeout: Option<std::time::Duration>,
    /// CLOCK_MONOTONIC (ns) at the run clock's zero, to place workers' `start_ns`/`end_ns`.
    pub origin_ns: u64,
    /// Failed worker starts across the slots: alike twice in a row, no worker starts again.
    pub starts: starts::StartFailures,
}

impl WorkerContext {
    pub fn new(
        run: Arc<RunContext>,
        spec: WorkerSpec,
        poolscope: PathBuf,
        max_tasks: u32,
        timeout: Option<std::time::Duration>,
    ) -> Self {
        let now_ns = crate::worker::protocol::monotonic_ns();
        let since_start = u64::try_from(run.clock.now().as_nanos()).unwrap_or(u64::MAX);
        WorkerContext {
            origin_ns: now_ns.saturating_sub(since_start),
            run,
            spec,
            poolscope,
            max_tasks,
            timeout,
            starts: starts::StartFailures::default(),
        }
    }
}

/// A slot's mailbox, shared between the launcher and the slot's thread.
#[derive(Default)]
struct Mailbox {
    /// Orders not yet handed to the worker, oldest first.
    orders: std::collections::VecDeque<AttemptOrder>,
    /// How many failures the scheduler has decided on since the slot last looked.
    resumes: u32,
    /// The run is over: finish, stop the worker, end the thread.
    closed: bool,
}

/// What a slot's thread and the launcher share.
struct Shared {
    mailbox: Mutex<Mailbox>,
    /// An eventfd the thread polls; written when the mailbox changes.
    doorbell: EventFd,
    /// The item the worker is on now, and the worker's PID.
    running: Mutex<Option<(AttemptKey, u32)>>,
    /// How many orders the slot would like waiting behind its running one.
    wants: AtomicUsize,
}

impl Shared {
    fn new() -> io::Result<Self> {
        let doorbell =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Shared {
            mailbox: Mutex::default(),
            doorbell,
            running: Mutex::new(None),
            wants: AtomicUsize::new(0),
        })
    }

    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ring(&self) {
        let _ = self.doorbell.write(1);
    }
}

struct SlotThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Runs tasks as items on persistent workers, one worker per slot.
pub struct WorkerLauncher {
    ctx: Arc<WorkerContext>,
    replies: Sender<LaunchMsg>,
    slots: Vec<Option<SlotThread>>,
}

impl WorkerLauncher {
    pub fn new(ctx: Arc<WorkerContext>, replies: Sender<LaunchMsg>) -> Self {
        WorkerLauncher {
            ctx,
            replies,
            slots: Vec::new(),
        }
    }

    fn slot_thread(&mut self, slot: usize, core: Option<usize>) -> io::Result<&SlotThread> {
        if self.slots.len() < slot {
            self.slots.resize_with(slot, || None);
        }
        let entry = &mut self.slots[slot - 1];
        if entry.is_none() {
            let shared = Arc::new(Shared::new()?);
            let ctx = Arc::clone(&self.ctx);
            let replies = self.replies.clone();
            let theirs = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("poolscope-worker-{slot}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let served = super::panics::catch(|| {
                        slot::run(slot, core, &theirs, &ctx, &replies);
                    });
                    if let Err(panic) = served {
                        let _ = replies.send(LaunchMsg::Panicked(panic));
                    }
                })?;
            *entry = Some(SlotThread {
                shared,
                thread: Some(thread),
            });
        }
        entry
            .as_ref()
            .ok_or_else(|| io::Error::other("slot thread missing"))
    }

    fn shared(&self, slot: usize) -> Option<&Shared> {
        let thread = self.slots.get(slot.checked_sub(1)?)?.as_ref()?;
        Some(&thread.shared)
    }
}

impl Launcher for WorkerLauncher {
    fn launch(&mut self, order: AttemptOrder) {
        let (key, slot) = (order.key, order.slot);
        match self.slot_thread(slot, order.core) {
            Ok(thread) => {
                let was_empty = {
                    let mut mailbox = thread.shared.mailbox();
                    mailbox.orders.push_back(order);
                    mailbox.orders.len() == 1
                };
                // A thread with orders still in its mailbox looks at it again anyway.
                if was_empty {
                    thread.shared.ring();
                }
            }
            Err(e) => {
                let at = self.ctx.run.clock.now();
                let transient = super::process::is_transient(&e);
                let record = Box::new(AttemptRecord::not_started(
                    key,
                    slot,
                    at,
                    format!("no thread to run its worker: {e}"),
                ));
                let _ = self.replies.send(if transient {
                    LaunchMsg::NoRoom(record)
                } else {
                    LaunchMsg::Finished(record)
                });
            }
        }
    }

    fn retract(&mut self, slot: usize) -> Option<AttemptOrder> {
        self.shared(slot)?.mailbox().orders.pop_back()
    }

    fn take_over(&mut self, slot: usize) -> Option<AttemptOrder> {
        self.shared(slot)?.mailbox().orders.pop_front()
    }

    fn cancel_unstarted(&mut self, key: AttemptKey) -> Option<AttemptOrder> {
        self.slots.iter().flatten().find_map(|t| {
            let mut mailbox = t.shared.mailbox();
            let at = mailbox.orders.iter().position(|o| o.key == key)?;
            mailbox.orders.remove(at)
        })
    }

    fn resume(&mut self, slot: usize) {
        if let Some(shared) = self.shared(slot) {
            shared.mailbox().resumes += 1;
            shared.ring();
        }
    }

    fn signal(&mut self, key: AttemptKey, pid: u32, signal: Signal) {
        // Only while the worker is still on that item: a worker that has moved on is
        // not the item's any more.
        let Some(shared) = self.shared_of_pid(pid) else {
            return;
        };
        let running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        if *running == Some((key, pid)) {
            super::child::signal_group(pid, signal);
        }
    }

    /// What the slots ask for: none for workers of items of a millisecond or more, up to
    /// [`DEPTH`] for tiny ones.
    fn depth(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|t| t.shared.wants.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
            .min(DEPTH)
    }
}

impl WorkerLauncher {
    fn shared_of_pid(&self, pid: u32) -> Option<&Shared> {
        self.slots.iter().flatten().map(|t| &*t.shared).find(|s| {
            s.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|(_, p)| p == pid)
        })
    }
}

impl Drop for WorkerLauncher {
    /// Ask every worker to exit (EOF on its fd 3) and wait for the slots' threads, which
    /// kill workers that do not go.
    fn drop(&mut self) {
        for thread in self.slots.iter().flatten() {
            thread.shared.mailbox().closed = true;
            thread.shared.ring();
        }
        for thread in self.slots.iter_mut().flatten() {
            if let Some(handle) = thread.thread.take() {
                let _ = handle.join();
            }
        }
    }
}
