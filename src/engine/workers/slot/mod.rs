//! One slot's thread: its worker's whole life, in one `poll` loop over the mailbox's
//! doorbell, the worker's replies, stdout, stderr and pidfd, and (while items wait to be
//! written) its items pipe.

mod exit;
mod replies;
mod result;
mod starts;

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::sys::signal::Signal;

use super::spawn::{self, Process};
use super::{DEPTH, Shared, WorkerContext};
use crate::engine::launcher::{AttemptOrder, LaunchMsg};
use crate::event::{AttemptRecord, LiveOutput, WorkerChange};
use crate::monitor::StatFields;
use crate::output::Capture;
use crate::worker::WorkerProgram;
use crate::worker::protocol;
use exit::captures;

/// A worker of tiny items holds about this much work ahead of the item it is on.
pub(super) const AHEAD: Duration = Duration::from_millis(2);

/// Items are sent ahead only to a worker whose items take less than this on average.
const PREFETCH_BELOW: Duration = Duration::from_millis(1);

/// How long a worker may take to exit after EOF on its items pipe (recycled, or at the end
/// of the run) before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A worker that closes its fd 4 must exit within this, or it is broken.
const REPLIES_CLOSED_GRACE: Duration = Duration::from_millis(200);

/// Without a pidfd (Linux before 5.3), how often a slot looks whether its worker exited.
pub(super) const NO_PIDFD_POLL: Duration = Duration::from_millis(50);

/// Bytes of a bad reply shown in the error.
const EXCERPT: usize = 200;

/// An item handed to the worker and not answered yet.
struct InFlight {
    order: AttemptOrder,
    /// Set when it becomes the item the worker is on.
    head: Option<Head>,
}

/// The item the worker is on: when it started (as far as poolscope knows) and its output.
struct Head {
    at: Duration,
    captures: [Capture; 2],
}

/// The slot's worker process and what it holds.
struct Worker {
    process: Process,
    ready: bool,
    /// Items sent to this worker.
    sent: u32,
    in_flight: VecDeque<InFlight>,
    /// Item lines not yet written to its fd 3.
    outgoing: Vec<u8>,
    /// A reply line not yet complete.
    partial: Vec<u8>,
    /// A reply line too long to hold, being read.
    long: Option<Box<replies::LongLine>>,
    /// It has written to stdout or stderr: feed it one item at a time.
    printed: bool,
    /// It broke the protocol: what it did.
    broken: Option<String>,
    /// Output read while it was on no item; it goes to its next item.
    stray: [Vec<u8>; 2],
    /// The last `/proc/PID/stat` reading, for per-item CPU.
    last_stat: Option<StatFields>,
    /// Items it finished.
    done: u32,
    /// Asked to exit (EOF on its fd 3), and why.
    leaving: Option<&'static str>,
    /// It must say it is ready by then (`[worker] ready_timeout` after its start), and
    /// that limit.
    ready_by: Option<(Instant, Duration)>,
    /// Asked to leave: killed if still there at this instant.
    leave_by: Option<Instant>,
    /// Killed because it did not leave when asked.
    killed_leaving: bool,
    /// When its fd 4 reached end of file while it was not asked to leave.
    replies_closed_at: Option<Instant>,
}

struct Slot<'a> {
    slot: usize,
    shared: &'a Shared,
    ctx: &'a WorkerContext,
    replies: &'a Sender<LaunchMsg>,
    worker: Option<Worker>,
    generation: u64,
    /// Failed items the scheduler has not decided on yet (retry, halt); the mailbox is
    /// held until it has decided on every one.
    undecided: u32,
    /// Average item time, seconds (decaying).
    item_secs: f64,
    /// The run is over: the worker is asked to leave and the thread ends after it.
    closing: bool,
    buf: Vec<u8>,
}

/// The slot thread's body.
pub(super) fn run(
    slot: usize,
    core: Option<usize>,
    shared: &Shared,
    ctx: &WorkerContext,
    replies: &Sender<LaunchMsg>,
) {
    if let Some(core) = core {
        crate::engine::child::pin_this_thread(core);
    }
    crate::engine::panics::injected("worker");
    let mut s = Slot {
        slot,
        shared,
        ctx,
        replies,
        worker: None,
        generation: 0,
        undecided: 0,
        item_secs: AHEAD.as_secs_f64(),
        closing: false,
        buf: vec![0u8; 64 * 1024],
    };
    s.go();
}

impl Slot<'_> {
    fn go(&mut self) {
        loop {
            let (closed, has_orders) = {
                let mut mailbox = self.shared.mailbox();
                let decided = std::mem::take(&mut mailbox.resumes);
                self.undecided = self.undecided.saturating_sub(decided);
                (mailbox.closed, !mailbox.orders.is_empty())
            };
            if closed {
                self.closing = true;
                if self.worker.is_none() {
                    return;
                }
                self.ask_to_leave("the run ended");
            } else if self.worker.is_none() && self.undecided == 0 && has_orders {
                self.start_worker();
                continue;
            }
            if !closed {
                self.feed();
            }
            self.write_outgoing();
            self.wait_and_handle();
        }
    }

    /// Start the slot's worker; if it cannot start, its next order fails (as does every
    /// order once the run starts no worker any more).
    fn start_worker(&mut self) {
        if self.refuse_start() {
            return;
        }
        self.generation += 1;
        // Start-up (imports, `init`) is not an item's time: it has a limit of its own.
        let limit = self.ctx.spec.ready_timeout;
        match spawn::spawn(self.ctx, self.slot, self.generation) {
            Ok(process) => {
                self.send_worker(process.pid, WorkerChange::Started);
                self.worker = Some(Worker {
                    process,
                    ready: false,
                    sent: 0,
                    in_flight: VecDeque::new(),
                    outgoing: Vec::new(),
                    partial: Vec::new(),
                    long: None,
                    printed: false,
                    broken: None,
                    stray: [Vec::new(), Vec::new()],
                    last_stat: None,
                    done: 0,
                    leaving: None,
                    ready_by: Instant::now().checked_add(limit).map(|at| (at, limit)),
                    leave_by: None,
                    killed_leaving: false,
                    replies_closed_at: None,
                });
            }
            Err(spawn::SpawnError { error, transient }) => {
                // Refused for a moment: the scheduler gives the order to another slot.
                if !transient {
                    self.start_failed(error.to_string(), b"");
                }
                let order = self.shared.mailbox().orders.pop_front();
                if let Some(order) = order {
                    let at = self.ctx.run.clock.now();
                    let record =
                        AttemptRecord::not_started(order.key, self.slot, at, error.to_string());
                    let record = Box::new(record);
                    let _ = self.replies.send(if transient {
                        LaunchMsg::NoRoom(record)
                    } else {
                        self.undecided += 1;
                        LaunchMsg::Finished(record)
                    });
                }
            }
        }
    }

    /// Hand waiting orders to a ready worker, up to its window and its item quota.
    fn feed(&mut self) {
        if self.undecided > 0 {
            return;
        }
        let window = match &self.worker {
            Some(w) if w.ready && w.leaving.is_none() && w.broken.is_none() => {
                window(self.item_secs, may_print(self.ctx, w))
            }
            _ => return,
        };
        let max = self.ctx.max_tasks;
        let mut fed = Vec::new();
        {
            let Some(w) = &self.worker else { return };
            let mut room = window.saturating_sub(w.in_flight.len());
            if max > 0 {
                room = room.min(max.saturating_sub(w.sent) as usize);
            }
            if room > 0 {
                let mut mailbox = self.shared.mailbox();
                while fed.len() < room {
                    match mailbox.orders.pop_front() {
                        Some(order) => fed.push(order),
                        None => break,
                    }
                }
            }
        }
        let Some(w) = &mut self.worker else { return };
        for order in fed {
            let item = order.task.item().unwrap_or("null");
            protocol::write_item(&mut w.outgoing, order.key.seq as u64, item);
            w.sent += 1;
            w.in_flight.push_back(InFlight { order, head: None });
        }
        self.start_head();
        let Some(w) = &mut self.worker else { return };
        if max > 0 && w.sent >= max && w.in_flight.is_empty() && w.leaving.is_none() {
            self.ask_to_leave("recycled");
        }
    }

    /// If the worker's first item has not been announced as running, announce it.
    fn start_head(&mut self) {
        let at = self.ctx.run.clock.now();
        let Some(w) = &mut self.worker else { return };
        let pid = w.process.pid;
        let Some(first) = w.in_flight.front_mut() else {
            *self
                .shared
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            return;
        };
        if first.head.is_some() {
            return;
        }
        let key = first.order.key;
        let mut captures = captures(self.ctx, key);
        for (capture, stray) in captures.iter_mut().zip(w.stray.iter_mut()) {
            if !stray.is_empty() {
                capture.push(stray);
                stray.clear();
            }
        }
        let output = LiveOutput {
            stdout: captures[0].tail(),
            stderr: captures[1].tail(),
        };
        first.head = Some(Head { at, captures });
        *self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((key, pid));
        let _ = self.replies.send(LaunchMsg::Started {
            key,
            pid,
            at,
            output,
        });
    }

    /// Close the worker's fd 3: it exits once it has answered what it holds, or is killed
    /// [`CLOSE_GRACE`] later.
    fn ask_to_leave(&mut self, why: &'static str) {
        if let Some(w) = &mut self.worker
            && w.leaving.is_none()
        {
            w.leaving = Some(why);
            w.leave_by = Some(Instant::now() + CLOSE_GRACE);
            if w.outgoing.is_empty() {
                w.process.items = None;
            }
        }
    }

    fn write_outgoing(&mut self) {
        let Some(w) = &mut self.worker else { return };
        while !w.outgoing.is_empty() {
            let Some(fd) = &w.process.items else {
                w.outgoing.clear();
                break;
            };
            match nix::unistd::write(fd, &w.outgoing) {
                Ok(n) => {
                    w.outgoing.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                // The worker closed its fd 3; its exit will be noticed.
                Err(_) => {
                    w.outgoing.clear();
                    w.process.items = None;
                    return;
                }
            }
        }
        if w.leaving.is_some() {
            w.process.items = None;
        }
    }

    /// Block until something happens, then deal with it.
    fn wait_and_handle(&mut self) {
        use nix::poll::PollFlags;
        // What is polled, in this order: the doorbell, then the worker's replies, stdout,
        // stderr and pidfd, then its items pipe while items wait to be written.
        let mut ready = [false; 6];
        {
            let mut fds = vec![(self.shared.doorbell.as_fd(), PollFlags::POLLIN)];
            let mut index = [None; 6];
            if let Some(w) = &self.worker {
                let p = &w.process;
                let items = p.items.as_ref().filter(|_| !w.outgoing.is_empty());
                let watched = [&p.replies, &p.output[0], &p.output[1], &p.pidfd];
                for (i, fd) in watched.into_iter().enumerate() {
                    if let Some(fd) = fd {
                        index[i + 1] = Some(fds.len());
                        fds.push((fd.as_fd(), PollFlags::POLLIN));
                    }
                }
                if let Some(fd) = items {
                    index[5] = Some(fds.len());
                    fds.push((fd.as_fd(), PollFlags::POLLOUT));
                }
            }
            let deadline = self.worker.as_ref().and_then(next_deadline);
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let polled = crate::engine::child::poll(&fds, timeout);
            ready[0] = polled[0];
            for (r, i) in ready.iter_mut().zip(index).skip(1) {
                *r = i.is_some_and(|i| polled[i]);
            }
        }
        self.enforce_deadlines();
        if ready[0] {
            let _ = self.shared.doorbell.read();
        }
        let [_, replies, out, err, pidfd, _] = ready;
        if out {
            self.read_output(0);
        }
        if err {
            self.read_output(1);
        }
        if replies {
            self.read_replies(false);
        }
        let exited = match &self.worker {
            Some(w) if w.process.pidfd.is_none() => w.process.has_exited(),
            Some(_) => pidfd,
            None => false,
        };
        if exited {
            self.worker_exited();
        }
    }

    /// Kill a worker that missed a deadline: not ready in time, not gone when asked, or
    /// alive with its fd 4 closed.
    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let Some(w) = &mut self.worker else { return };
        if w.broken.is_none()
            && !w.ready
            && let Some((at, limit)) = w.ready_by
            && at <= now
        {
            // It never said it was ready: broken, like a worker writing garbage.
            w.broken = Some(format!(
                "the worker did not say {{\"ready\": true}} within {}",
                crate::human::seconds(limit)
            ));
            w.process.signal(Signal::SIGKILL);
        }
        if w.leave_by.is_some_and(|at| at <= now) {
            w.leave_by = None;
            w.killed_leaving = true;
            w.process.signal(Signal::SIGKILL);
        }
        if w.broken.is_none()
            && w.leaving.is_none()
            && w.replies_closed_at
                .is_some_and(|at| at + REPLIES_CLOSED_GRACE <= now)
        {
            w.broken = Some("the worker closed its fd 4 (replies) but did not exit".to_string());
            w.process.signal(Signal::SIGKILL);
        }
    }

    fn send_worker(&self, pid: u32, change: WorkerChange) {
        let _ = self.replies.send(LaunchMsg::Worker {
            slot: self.slot,
            pid,
            at: self.ctx.run.clock.now(),
            change,
        });
    }
}

/// A worker that is not built in gets one item at a time until it has answered this many
/// without printing, so that a worker that prints as it works is caught before it holds
/// several items.
const SILENT_BEFORE_PREFETCH: u32 = 8;

/// Whether `w` may print while on an item: it has, or it is not built in and has not yet
/// shown it is silent.
fn may_print(ctx: &WorkerContext, w: &Worker) -> bool {
    let builtin = matches!(ctx.spec.program, WorkerProgram::Builtin(_));
    w.printed || (!builtin && w.done < SILENT_BEFORE_PREFETCH)
}

/// The next instant something must happen to `w` unprompted.
fn next_deadline(w: &Worker) -> Option<Instant> {
    let ready = w
        .ready_by
        .filter(|_| !w.ready && w.broken.is_none())
        .map(|(at, _)| at);
    let closed = w
        .replies_closed_at
        .filter(|_| w.broken.is_none() && w.leaving.is_none())
        .map(|at| at + REPLIES_CLOSED_GRACE);
    let look = w
        .process
        .pidfd
        .is_none()
        .then(|| Instant::now() + NO_PIDFD_POLL);
    [ready, w.leave_by, closed, look]
        .into_iter()
        .flatten()
        .min()
}

/// How many items a worker should hold, counting the one it is on, given its average item
/// time and whether it may print: one, unless its items take less than [`PREFETCH_BELOW`]
/// (then about [`AHEAD`] of work), so that no item waits behind another while a slot is
/// free.
fn window(item_secs: f64, may_print: bool) -> usize {
    if may_print || item_secs >= PREFETCH_BELOW.as_secs_f64() {
        return 1;
    }
    let ahead = (AHEAD.as_secs_f64() / item_secs.max(1e-7)).ceil() as usize;
    ahead.clamp(2, DEPTH + 1)
}
