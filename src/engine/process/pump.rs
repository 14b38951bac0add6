//! Reading an attempt's two output pipes and noticing its exit, on one thread, with
//! `poll` over the pipes and a pidfd; then `wait4` for its status and rusage.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::RunContext;
use crate::engine::launcher::LaunchMsg;
use crate::event::{AttemptKey, Outcome, Stream};
use crate::monitor::StatFile;
use crate::output::Capture;

/// How long the pipes may stay open after the main process exited and its group was killed.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Live output events are sent at most this often per stream.
const OUTPUT_EVERY: Duration = Duration::from_millis(100);

/// How long after its start an attempt's `Started` (and the record of the attempt before
/// it on the slot) is held back, unless it ends first (see [`Held`]).
const HOLD_REPORTS: Duration = Duration::from_millis(20);

// The first output event of an attempt comes `OUTPUT_EVERY` after its start: the held
// reports, `Started` among them, are always out by then.
const _: () = assert!(HOLD_REPORTS.as_millis() < OUTPUT_EVERY.as_millis());

/// Reports held back while the attempt just spawned starts up: `Started`, and the record
/// of the slot's attempt before it. Sent once [`HOLD_REPORTS`] has passed, or at once
/// when the attempt ends, whichever comes first.
///
/// A report wakes the scheduler's thread, which then records it (the run's model, the
/// joblog line). When tasks end together and the next ones start, that work would compete
/// with the starting tasks for the cores; a few milliseconds later it does not. The slot
/// holds its next order already, so it does not need the scheduler in the meantime.
pub(super) struct Held {
    reports: Vec<LaunchMsg>,
    until: Instant,
}

impl Held {
    pub(super) fn new(reports: Vec<LaunchMsg>) -> Self {
        Held {
            reports,
            until: Instant::now() + HOLD_REPORTS,
        }
    }

    /// When the held reports are due, if any are held.
    fn due(&self) -> Option<Instant> {
        (!self.reports.is_empty()).then_some(self.until)
    }
}

/// How the main process ended, from `wait4`.
pub(super) struct Exit {
    pub(super) at: Duration,
    pub(super) outcome: Outcome,
    pub(super) signal: Option<i32>,
    pub(super) user: Duration,
    pub(super) system: Duration,
    pub(super) max_rss: u64,
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
    /// When the process started, on the run's clock.
    started: Duration,
    /// Opened while the process starts, read as it is reaped, when the monitor may not
    /// see the process (see [`Pump::last_core`]).
    stat: Option<StatFile>,
    held: Held,
}

/// A process the monitor has sampled for this long has had its cores recorded: two
/// placement periods.
const MONITOR_SEES_AFTER: Duration =
    Duration::from_millis(2 * 1000 / crate::monitor::PLACEMENT_HZ as u64);

impl<'a> Pump<'a> {
    pub(super) fn new(
        key: AttemptKey,
        (pid, started): (u32, Duration),
        ctx: &'a RunContext,
        replies: &'a Sender<LaunchMsg>,
        captures: [Capture; 2],
        held: Held,
    ) -> Self {
        Pump {
            key,
            pid,
            ctx,
            replies,
            captures,
            last_sent: [Instant::now(); 2],
            started,
            // With the monitor sampling already, the file is opened only if the process
            // ends too soon for it (at the end, then).
            stat: if ctx.monitor_since.get().is_some() {
                None
            } else {
                StatFile::open(pid)
            },
            held,
        }
    }

    /// Send the held reports, in their order.
    fn release_held(&mut self) {
        for msg in self.held.reports.drain(..) {
            let _ = self.replies.send(msg);
        }
    }

    pub(super) fn into_captures(self) -> [Capture; 2] {
        self.captures
    }

    /// Read both pipes until the process has exited and the pipes are closed.
    /// `pidfd` is the process's, if there is one; else one is opened.
    pub(super) fn run(
        &mut self,
        mut pipes: [Option<OwnedFd>; 2],
        pidfd: Option<OwnedFd>,
        buf: &mut ReadBuf,
    ) -> Exit {
        let pidfd = pidfd.or_else(|| pidfd_open(self.pid));
        let mut exit: Option<Exit> = None;
        let mut drain_until: Option<Instant> = None;
        let mut swept = false;
        loop {
            let open = pipes.iter().filter(|p| p.is_some()).count();
            if open == 0 && (exit.is_some() || pidfd.is_none()) {
                break;
            }
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
            for fd in pipes.iter().flatten() {
                fds.push(pollfd(fd.as_raw_fd()));
            }
            if exit.is_none()
                && let Some(fd) = &pidfd
            {
                fds.push(pollfd(fd.as_raw_fd()));
            }
            let wake_at = [drain_until, self.held.due()].into_iter().flatten().min();
            let timeout = wake_at.map_or(-1, |d| {
                let left = d.saturating_duration_since(Instant::now()).as_micros();
                i32::try_from(left.div_ceil(1000)).unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if self.held.due().is_some_and(|due| due <= Instant::now()) {
                self.release_held();
            }
            if n == 0 {
                if drain_until.is_none_or(|d| Instant::now() < d) {
                    continue;
                }
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
                continue;
            }
            for (i, pipe) in pipes.iter_mut().enumerate() {
                let Some(fd) = pipe else { continue };
                let ready = fds.iter().any(|p| p.fd == fd.as_raw_fd() && p.revents != 0);
                if ready && !self.read_into(i, fd, buf) {
                    *pipe = None;
                }
            }
            if exit.is_none() && pidfd_ready(&fds, pidfd.as_ref()) {
                exit = Some(self.reap());
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
        }
        exit.unwrap_or_else(|| self.reap())
    }

    /// Read once from pipe `i`; false at end of file or error.
    fn read_into(&mut self, i: usize, fd: &OwnedFd, buf: &mut ReadBuf) -> bool {
        let bytes = match buf.read(fd) {
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

    /// The core the exited, not yet reaped process last ran on (a zombie's stat still
    /// names it), unless the monitor has sampled the process long enough to have recorded
    /// its cores: then the read is saved, and with it a file opened per task.
    fn last_core(&mut self) -> Option<usize> {
        let now = self.ctx.clock.now();
        // The monitor watches the process from when the scheduler hears it started, which
        // may be as late as the held reports.
        let watched_from = self.started + HOLD_REPORTS;
        let sampled = self.ctx.monitor_since.get().is_some_and(|&since| {
            now.saturating_sub(since.max(watched_from)) >= MONITOR_SEES_AFTER
        });
        if sampled {
            return None;
        }
        match self.stat.take() {
            Some(stat) => stat.core(),
            None => StatFile::open(self.pid).and_then(|stat| stat.core()),
        }
    }

    /// Reap the main process and kill what is left of its process group.
    fn reap(&mut self) -> Exit {
        let last_core = self.last_core();
        let (status, usage) = wait4(self.pid);
        let at = self.ctx.clock.now();
        // It has ended: what was held goes before its own record.
        self.release_held();
        let leftovers_killed = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL).is_ok();
        let (outcome, signal) = match status {
            Ok(status) if libc::WIFEXITED(status) => (
                Outcome::Exited {
                    code: libc::WEXITSTATUS(status),
                },
                None,
            ),
            Ok(status) if libc::WIFSIGNALED(status) => {
                let signal = libc::WTERMSIG(status);
                (Outcome::Signaled { signal }, Some(signal))
            }
            Ok(status) => (Outcome::Exited { code: status }, None),
            Err(e) => (
                Outcome::NotStarted {
                    error: format!("lost track of the process: {e}"),
                },
                None,
            ),
        };
        Exit {
            at,
            outcome,
            signal,
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
            max_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
            leftovers_killed,
            last_core,
        }
    }
}

/// A slot's buffer for reading its attempts' pipes, kept from one attempt to the next.
/// Reads go into its uninitialized capacity: nothing zeroes it first, and an attempt that
/// writes little touches little of it.
pub(super) struct ReadBuf(Vec<u8>);

impl ReadBuf {
    pub(super) fn new() -> Self {
        ReadBuf(Vec::with_capacity(64 * 1024))
    }

    /// Read once from `fd`; what was read (empty at end of file).
    fn read(&mut self, fd: &OwnedFd) -> io::Result<&[u8]> {
        self.0.clear();
        let spare = self.0.spare_capacity_mut();
        // SAFETY: fd is a valid open descriptor; `spare` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        // SAFETY: read(2) initialized the first `n` bytes of the spare capacity.
        unsafe { self.0.set_len(n) };
        Ok(&self.0)
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn pidfd_ready(fds: &[libc::pollfd], pidfd: Option<&OwnedFd>) -> bool {
    pidfd.is_some_and(|p| fds.iter().any(|f| f.fd == p.as_raw_fd() && f.revents != 0))
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Blocking `wait4` on `pid`: its wait status and resource usage.
fn wait4(pid: u32) -> (io::Result<i32>, libc::rusage) {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    loop {
        // SAFETY: status and usage are valid for writes.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r >= 0 {
            return (Ok(status), usage);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return (Err(e), usage);
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}
