//! Reading an attempt's two output pipes and noticing its exit, on one thread, with one
//! `poll` over the pipes and a pidfd; then `wait4` for its status and rusage.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;

use super::RunContext;
use crate::engine::child::{self, Child, Usage};
use crate::engine::launcher::LaunchMsg;
use crate::event::{AttemptKey, Outcome, Stream};
use crate::monitor::StatFile;
use crate::output::Capture;

/// How long the pipes may stay open after the main process exited and its group was killed.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Live output events are sent at most this often per stream.
const OUTPUT_EVERY: Duration = Duration::from_millis(100);

/// Without a pidfd (Linux before 5.3), how often the pump looks whether the process exited.
const NO_PIDFD_POLL: Duration = Duration::from_millis(10);

/// How the main process ended, from `wait4`.
pub(super) struct Exit {
    pub(super) at: Duration,
    pub(super) outcome: Outcome,
    pub(super) usage: Usage,
    pub(super) leftovers_killed: bool,
    pub(super) last_core: Option<usize>,
}

pub(super) struct Pump<'a> {
    key: AttemptKey,
    pid: u32,
    ctx: &'a RunContext,
    replies: &'a Sender<LaunchMsg>,
    captures: [Capture; 2],
    last_sent: [Instant; 2],
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        key: AttemptKey,
        pid: u32,
        ctx: &'a RunContext,
        replies: &'a Sender<LaunchMsg>,
        captures: [Capture; 2],
    ) -> Self {
        Pump {
            key,
            pid,
            ctx,
            replies,
            captures,
            last_sent: [Instant::now(); 2],
        }
    }

    pub(super) fn into_captures(self) -> [Capture; 2] {
        self.captures
    }

    /// Read both pipes of `child` until it has exited and the pipes are closed.
    pub(super) fn run(&mut self, child: Child, buf: &mut [u8]) -> Exit {
        let mut pipes = [Some(child.stdout), Some(child.stderr)];
        let pidfd = child.pidfd;
        let mut exit: Option<Exit> = None;
        let mut drain_until: Option<Instant> = None;
        let mut swept = false;
        loop {
            if pipes.iter().all(Option::is_none) && exit.is_some() {
                break;
            }
            let mut fds: Vec<(BorrowedFd, PollFlags)> = pipes
                .iter()
                .flatten()
                .map(|fd| (fd.as_fd(), PollFlags::POLLIN))
                .collect();
            let watch_exit = exit.is_none() && pidfd.is_some();
            if let (true, Some(fd)) = (watch_exit, &pidfd) {
                fds.push((fd.as_fd(), PollFlags::POLLIN));
            }
            let timeout = match (drain_until, exit.is_none() && pidfd.is_none()) {
                (Some(d), _) => Some(d.saturating_duration_since(Instant::now())),
                (None, true) => Some(NO_PIDFD_POLL),
                (None, false) => None,
            };
            let ready = child::poll(&fds, timeout);
            let exited = if watch_exit {
                ready.last() == Some(&true)
            } else {
                exit.is_none() && pidfd.is_none() && child::has_exited(self.pid)
            };
            let mut pipe_ready = ready.iter().take(fds.len() - usize::from(watch_exit));
            for (i, pipe) in pipes.iter_mut().enumerate() {
                let Some(fd) = pipe else { continue };
                if pipe_ready.next() == Some(&true) && !self.read_into(i, fd, buf) {
                    *pipe = None;
                }
            }
            if exited {
                exit = Some(self.reap());
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            if drain_until.is_some_and(|d| d <= Instant::now()) && pipes.iter().any(Option::is_some)
            {
                // The grace after exit ran out with a pipe still open.
                if swept {
                    break;
                }
                crate::guard::sweep(
                    &self.ctx.marker.attempt(self.key),
                    Duration::from_millis(100),
                );
                swept = true;
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
        }
        exit.unwrap_or_else(|| self.reap())
    }

    /// Read once from pipe `i`; false at end of file or error.
    fn read_into(&mut self, i: usize, fd: &OwnedFd, buf: &mut [u8]) -> bool {
        let bytes = match child::read(fd, buf) {
            Ok([]) => return false,
            Ok(bytes) => bytes,
            Err(e) => return e.kind() == io::ErrorKind::Interrupted,
        };
        self.captures[i].push(bytes);
        if self.last_sent[i].elapsed() >= OUTPUT_EVERY {
            self.last_sent[i] = Instant::now();
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let total = self.captures[i].tail().total();
            let _ = self.replies.send(LaunchMsg::Output {
                key: self.key,
                stream,
                total,
            });
        }
        true
    }

    /// Reap the main process and kill what is left of its process group. The core it last
    /// ran on is read first (a zombie's stat still names it): a task shorter than the
    /// monitor's sampling period has no other record of it.
    fn reap(&mut self) -> Exit {
        let last_core = StatFile::open(self.pid).and_then(|stat| stat.core());
        let (outcome, usage) = child::reap(self.pid);
        let at = self.ctx.clock.now();
        let leftovers_killed = child::signal_group(self.pid, Signal::SIGKILL);
        let outcome = outcome.unwrap_or_else(|e| Outcome::NotStarted {
            error: format!("lost track of the process: {e}"),
        });
        Exit {
            at,
            outcome,
            usage,
            leftovers_killed,
            last_core,
        }
    }
}
