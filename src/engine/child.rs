//! Child processes, for command tasks and persistent workers alike: how they are started,
//! watched and reaped.
//!
//! A child is started in a process group of its own, stdin from `/dev/null`, stdout and
//! stderr into pipes, and gets a pidfd, so that one `poll` sees its exit beside its
//! output. Where the guardian keeps a PID namespace, the guardian starts it there (see
//! [`crate::guard::spawner`]); else std's `Command` does (`process_group(0)` keeps std on
//! its `posix_spawn` path). Either way it is this process's child, reaped with `wait4`
//! for its exit status and resource use.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::event::Outcome;
use crate::guard;

/// Lines, and at most bytes, of stderr kept with a failed attempt for error reports.
pub const STDERR_TAIL_LINES: usize = 20;
pub const STDERR_TAIL_BYTES: usize = 4096;

/// A started child: its PID, a pidfd (if the kernel gives one), and the read ends of its
/// stdout and stderr pipes.
pub struct Child {
    pub pid: u32,
    pub pidfd: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What to start: a program and its arguments, in a directory, with poolscope's
/// environment plus `env`.
pub struct Spec<'a> {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    /// What the child finds on its fds 3 and 4 (the worker protocol's pipes), if anything.
    pub protocol: Option<[BorrowedFd<'a>; 2]>,
}

impl<'a> Spec<'a> {
    /// `argv[0]` with the rest of `argv` as its arguments, in `cwd`.
    pub fn new(argv: &[impl AsRef<OsStr>], cwd: impl Into<PathBuf>) -> Self {
        let mut argv = argv.iter().map(|a| a.as_ref().to_os_string());
        Spec {
            program: argv.next().unwrap_or_default(),
            args: argv.collect(),
            cwd: cwd.into(),
            env: Vec::new(),
            protocol: None,
        }
    }

    /// Set `key` to `value` in the child's environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Give the child `items` on its fd 3 and `replies` on its fd 4.
    pub fn protocol(mut self, items: BorrowedFd<'a>, replies: BorrowedFd<'a>) -> Self {
        self.protocol = Some([items, replies]);
        self
    }
}

/// Start `spec` in a process group of its own, stdin from `/dev/null`, stdout and stderr
/// into pipes; in the guardian's PID namespace where there is one.
pub fn spawn(spec: &Spec<'_>) -> io::Result<Child> {
    match spawn_in_namespace(spec) {
        Some(started) => started,
        None => spawn_command(spec),
    }
}

/// Through the guardian; `None` if it keeps no namespace (or stopped answering).
fn spawn_in_namespace(spec: &Spec<'_>) -> Option<io::Result<Child>> {
    if !guard::namespace_ready() {
        return None;
    }
    let (request, null, (stdout, stdout_child), (stderr, stderr_child)) = match prepare(spec) {
        Ok(prepared) => prepared,
        Err(e) => return Some(Err(e)),
    };
    let mut fds = vec![null.as_fd(), stdout_child.as_fd(), stderr_child.as_fd()];
    fds.extend(spec.protocol.iter().flatten().copied());
    let pid = match guard::start_in_namespace(&request, &fds)? {
        Ok(pid) => pid,
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(Child {
        pid,
        pidfd: pidfd_open(pid),
        stdout,
        stderr,
    }))
}

/// The guardian's request for `spec`, `/dev/null`, and the stdout and stderr pipes.
type Prepared = (
    guard::spawner::Request,
    OwnedFd,
    (OwnedFd, OwnedFd),
    (OwnedFd, OwnedFd),
);

fn prepare(spec: &Spec<'_>) -> io::Result<Prepared> {
    let request = guard::spawner::Request::new(&spec.program, &spec.args, &spec.cwd, &spec.env)?;
    let null = OwnedFd::from(std::fs::File::open("/dev/null")?);
    let stdout = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let stderr = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((request, null, stdout, stderr))
}

/// With std's `Command`.
fn spawn_command(spec: &Spec<'_>) -> io::Result<Child> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some([items, replies]) = spec.protocol {
        with_protocol_fds(&mut command, items.as_raw_fd(), replies.as_raw_fd());
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("the child's output pipes are missing"));
    };
    // Reaped with `wait4` by whoever watches it, never through `Child`.
    drop(child);
    Ok(Child {
        pid,
        pidfd: pidfd_open(pid),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

/// Have `command`'s child find `items` on its fd 3 and `replies` on its fd 4 (the worker
/// protocol's pipes). This makes std fork instead of `posix_spawn`: a worker is started
/// once per slot, not once per task.
fn with_protocol_fds(command: &mut Command, items: RawFd, replies: RawFd) {
    use crate::worker::protocol::{ITEMS_FD, REPLIES_FD};
    // SAFETY: std has no way to place a pipe on a given descriptor of a child but a
    // `pre_exec` closure. It runs in the forked child before `exec` and calls only `fcntl`
    // and `dup2` (async-signal-safe) on descriptors the parent keeps open until `spawn`
    // returns. Both are first copied above 10, so neither `dup2` overwrites the other.
    unsafe {
        command.pre_exec(move || {
            let high_items = libc::fcntl(items, libc::F_DUPFD_CLOEXEC, 10);
            let high_replies = libc::fcntl(replies, libc::F_DUPFD_CLOEXEC, 10);
            if high_items < 0
                || high_replies < 0
                || libc::dup2(high_items, ITEMS_FD) < 0
                || libc::dup2(high_replies, REPLIES_FD) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A pidfd of `pid`, or `None` on kernels before 5.3.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: `pidfd_open` has no wrapper in std or nix; it takes a PID and flags and
    // returns a new descriptor or -1, touching no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What `wait4` says of a reaped child.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub user: Duration,
    pub system: Duration,
    /// Peak resident set of its largest process, bytes.
    pub max_rss: u64,
}

/// Wait for `pid` (blocking) and reap it: how it ended, and what it used.
pub fn reap(pid: u32) -> (io::Result<Outcome>, Usage) {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = libc::pid_t::try_from(pid).unwrap_or(-1);
    loop {
        // SAFETY: `wait4` has no wrapper in std or nix (nix has no rusage with its waits);
        // `status` and `usage` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return (Err(e), Usage::default());
        }
    }
    let timeval = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    let usage = Usage {
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
        max_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    };
    (Ok(outcome(status)), usage)
}

/// Whether `pid` has exited, without reaping it: for kernels without pidfds.
pub fn has_exited(pid: u32) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    !matches!(
        waitid(Id::Pid(Pid::from_raw(pid)), flags),
        Ok(WaitStatus::StillAlive)
    )
}

/// How a wait status says the process ended.
pub fn outcome(status: i32) -> Outcome {
    if libc::WIFSIGNALED(status) {
        Outcome::Signaled {
            signal: libc::WTERMSIG(status),
        }
    } else if libc::WIFEXITED(status) {
        Outcome::Exited {
            code: libc::WEXITSTATUS(status),
        }
    } else {
        Outcome::Exited { code: status }
    }
}

/// Send `signal` to every process of the group led by `pid`; whether any was there.
pub fn signal_group(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid).is_ok_and(|pid| killpg(Pid::from_raw(pid), signal).is_ok())
}

/// Pin the calling thread to `core`: the children it starts inherit it.
pub fn pin_this_thread(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok() {
        let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// Make `fd` non-blocking.
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Poll `fds` (each with its events) for at most `timeout` (`None`: no limit); for each,
/// whether it is ready. Interrupted or failed polls report nothing ready.
pub fn poll(fds: &[(BorrowedFd<'_>, PollFlags)], timeout: Option<Duration>) -> Vec<bool> {
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|(fd, events)| PollFd::new(*fd, *events))
        .collect();
    let timeout = match timeout {
        // Rounded up, so that a deadline has passed when poll returns.
        Some(t) => nix::poll::PollTimeout::try_from(t.as_millis().saturating_add(1))
            .unwrap_or(nix::poll::PollTimeout::MAX),
        None => nix::poll::PollTimeout::NONE,
    };
    match nix::poll::poll(&mut polled, timeout) {
        Ok(n) if n > 0 => polled
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect(),
        _ => vec![false; fds.len()],
    }
}

/// Read once from `fd` into `buf`; what was read (empty at end of file).
pub fn read<'b>(fd: &OwnedFd, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let n = nix::unistd::read(fd, buf)?;
    Ok(&buf[..n])
}

#[cfg(test)]
mod tests;
