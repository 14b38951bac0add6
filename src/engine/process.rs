//! Running an attempt as its own process group, on a thread of its own.
//!
//! The thread spawns the command (posix_spawn: `process_group(0)` and no `pre_exec`, so
//! spawning stays cheap even from a large parent), then polls the two output pipes and a
//! pidfd of the process at once. When the process exits it is reaped with `wait4` (exit
//! status and rusage), whatever is left of its process group is killed, and the pipes are
//! drained; if they stay open, something escaped the group while holding them, so the
//! processes carrying the attempt's marker are killed too (see [`crate::guard`]).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::clock::RunClock;
use super::launcher::{AttemptOrder, LaunchMsg, Launcher};
use super::resolve::Resolver;
use crate::event::{AttemptKey, AttemptRecord, LiveOutput, Outcome, Stream};
use crate::guard::{MARKER_VAR, RunMarker};
use crate::output::Capture;

/// How long the pipes may stay open after the main process exited and its group was killed.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Live output events are sent at most this often per stream.
const OUTPUT_EVERY: Duration = Duration::from_millis(100);

/// What every attempt of a run shares.
#[derive(Debug)]
pub struct RunContext {
    pub run_dir: PathBuf,
    pub outputs: PathBuf,
    pub marker: RunMarker,
    pub output_cap: u64,
    pub clock: RunClock,
}

/// Runs each attempt as a process group, on one thread per worker slot (started on the
/// slot's first attempt and kept, so a new attempt costs no thread creation).
pub struct ProcessLauncher {
    ctx: Arc<RunContext>,
    replies: Sender<LaunchMsg>,
    slots: Vec<Option<SlotThread>>,
}

/// A worker slot's thread: the orders it has not started yet (the slot's next attempt
/// and at most one behind it), and a channel to wake it.
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

    /// `slot`'s thread, started if needed.
    fn slot_thread(&mut self, slot: usize, core: Option<usize>) -> io::Result<&SlotThread> {
        if self.slots.len() < slot {
            self.slots.resize_with(slot, || None);
        }
        let entry = &mut self.slots[slot - 1];
        if entry.is_none() {
            let (wake, woken) = crossbeam_channel::unbounded();
            let waiting = Arc::new(Mutex::new(VecDeque::new()));
            let mailbox = Arc::clone(&waiting);
            let ctx = Arc::clone(&self.ctx);
            let replies = self.replies.clone();
            std::thread::Builder::new()
                .name(format!("poolscope-slot-{slot}"))
                .stack_size(256 * 1024)
                .spawn(move || slot_loop(&mailbox, &woken, core, &ctx, &replies))?;
            *entry = Some(SlotThread { waiting, wake });
        }
        entry
            .as_ref()
            .ok_or_else(|| io::Error::other("slot thread missing"))
    }
}

/// A slot thread: run waiting orders one after the other; after a failure, wait to be
/// resumed. Ends when the launcher is dropped.
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
    let mut resolver = Resolver::default();
    let mut gate_open = true;
    loop {
        let next = if gate_open {
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
        } else {
            None
        };
        match next {
            Some(order) => gate_open = run_attempt(&order, ctx, replies, &mut resolver),
            None => match woken.recv() {
                Ok(Wake::Look) => {}
                Ok(Wake::Resume) => gate_open = true,
                Err(_) => return,
            },
        }
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, order: AttemptOrder) {
        let (key, slot) = (order.key, order.slot);
        let queued = match self.slot_thread(slot, order.core) {
            Ok(thread) => {
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
            Err(e) => Err(e),
        };
        if let Err(e) = queued {
            self.slots[slot - 1] = None;
            let at = self.ctx.clock.now();
            let record = not_started(key, slot, at, format!("no thread to run it: {e}"));
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

    fn signal(&mut self, _key: AttemptKey, pid: u32, signal: Signal) {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}

fn not_started(key: AttemptKey, slot: usize, at: Duration, error: String) -> AttemptRecord {
    AttemptRecord {
        key,
        slot,
        pid: 0,
        started: at,
        ended: at,
        stderr_tail: format!("poolscope: {error}"),
        outcome: Outcome::NotStarted { error },
        signal: None,
        user: Duration::ZERO,
        system: Duration::ZERO,
        max_rss: 0,
        stdout_bytes: 0,
        stderr_bytes: 0,
        cores: Vec::new(),
        leftovers_killed: false,
        is_final: false,
    }
}

/// File names of an attempt's saved output: `7.out`, or `7.attempt2.out` for a retry.
fn output_stem(key: AttemptKey) -> String {
    if key.attempt == 1 {
        key.seq.to_string()
    } else {
        format!("{}.attempt{}", key.seq, key.attempt)
    }
}

fn run_attempt(
    order: &AttemptOrder,
    ctx: &RunContext,
    replies: &Sender<LaunchMsg>,
    resolver: &mut Resolver,
) -> bool {
    let key = order.key;
    let stem = output_stem(key);
    let stdout = Capture::new(&ctx.outputs.join(format!("{stem}.out")), ctx.output_cap);
    let mut stderr = Capture::new(&ctx.outputs.join(format!("{stem}.err")), ctx.output_cap);
    let argv = order.task.argv(Some(order.slot));
    let task_path = order
        .task
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsStr::new(v));
    let mut command = match resolver.resolve(&argv[0], task_path) {
        Some(file) => {
            let mut c = Command::new(file);
            c.arg0(&argv[0]);
            c
        }
        None => Command::new(&argv[0]),
    };
    command
        .args(&argv[1..])
        .current_dir(&order.task.cwd)
        .envs(order.task.env.iter().map(|(k, v)| (k, v)))
        .env("POOLSCOPE_TASK", key.seq.to_string())
        .env("POOLSCOPE_SLOT", order.slot.to_string())
        .env("POOLSCOPE_RUN", &ctx.run_dir)
        .env(MARKER_VAR, ctx.marker.attempt(key))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = ctx.clock.now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = format!("cannot start `{}`: {e}", argv[0]);
            stderr.push(format!("poolscope: {error}\n").as_bytes());
            stderr.finish();
            stdout.finish();
            let record = not_started(key, order.slot, started, error);
            let _ = replies.send(LaunchMsg::Finished(Box::new(record)));
            return false;
        }
    };
    let pid = child.id();
    let output = LiveOutput {
        stdout: stdout.tail(),
        stderr: stderr.tail(),
        stdout_path: stdout.path().to_path_buf(),
        stderr_path: stderr.path().to_path_buf(),
    };
    let _ = replies.send(LaunchMsg::Started {
        key,
        pid,
        at: started,
        output,
    });
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    // The child is reaped with wait4 below, never through `Child`.
    drop(child);
    let mut pump = Pump {
        key,
        pid,
        ctx,
        replies,
        captures: [stdout, stderr],
        last_sent: [Instant::now(); 2],
    };
    let exit = pump.run(pipes);
    let [stdout, stderr] = pump.captures;
    let stderr_tail = stderr.tail().last_lines(20);
    let record = AttemptRecord {
        key,
        slot: order.slot,
        pid,
        started,
        ended: exit.at,
        outcome: exit.outcome,
        signal: exit.signal,
        user: exit.user,
        system: exit.system,
        max_rss: exit.max_rss,
        stdout_bytes: stdout.finish(),
        stderr_bytes: stderr.finish(),
        stderr_tail,
        cores: exit.last_core.into_iter().collect(),
        leftovers_killed: exit.leftovers_killed,
        is_final: false,
    };
    let success = record.outcome.is_success();
    let _ = replies.send(LaunchMsg::Finished(Box::new(record)));
    success
}

fn pin_this_thread(core: usize) {
    let mut set = CpuSet::new();
    if set.set(core).is_ok() {
        // Children inherit the spawning thread's affinity.
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// How the main process ended, from `wait4`.
struct Exit {
    at: Duration,
    outcome: Outcome,
    signal: Option<i32>,
    user: Duration,
    system: Duration,
    max_rss: u64,
    leftovers_killed: bool,
    last_core: Option<usize>,
}

struct Pump<'a> {
    key: AttemptKey,
    pid: u32,
    ctx: &'a RunContext,
    replies: &'a Sender<LaunchMsg>,
    captures: [Capture; 2],
    last_sent: [Instant; 2],
}

impl Pump<'_> {
    /// Read both pipes until the process has exited and the pipes are closed.
    fn run(&mut self, mut pipes: [Option<OwnedFd>; 2]) -> Exit {
        let pidfd = pidfd_open(self.pid);
        let mut exit: Option<Exit> = None;
        let mut drain_until: Option<Instant> = None;
        let mut swept = false;
        let mut buf = vec![0u8; 64 * 1024];
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
            let timeout = drain_until.map_or(-1, |d| {
                i32::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if n == 0 {
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
                if ready && !self.read_into(i, fd, &mut buf) {
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
    fn read_into(&mut self, i: usize, fd: &OwnedFd, buf: &mut [u8]) -> bool {
        // SAFETY: fd is a valid open descriptor and buf is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
        }
        if n == 0 {
            return false;
        }
        self.captures[i].push(&buf[..n as usize]);
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

    /// Reap the main process and kill what is left of its process group.
    fn reap(&mut self) -> Exit {
        // Read before reaping: a zombie's stat still names the core it last ran on.
        let last_core = crate::monitor::last_core(self.pid);
        let (status, usage) = wait4(self.pid);
        let at = self.ctx.clock.now();
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
