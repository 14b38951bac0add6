//! Starting one worker process: the protocol's pipes on its fds 3 and 4, stdout and stderr
//! piped, its own process group, and a pidfd to notice its exit.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::guard::MARKER_VAR;
use crate::worker::protocol::{ITEMS_FD, REPLIES_FD};

use super::WorkerContext;

/// A running worker process and poolscope's ends of its pipes (all non-blocking).
pub(super) struct Process {
    pub(super) pid: u32,
    /// Items go here (the worker's fd 3); `None` once closed to ask it to exit.
    pub(super) items: Option<OwnedFd>,
    /// Replies come from here (the worker's fd 4).
    pub(super) replies: Option<OwnedFd>,
    /// Its stdout and stderr.
    pub(super) output: [Option<OwnedFd>; 2],
    /// Readable once the process has exited (`None` on kernels before 5.3: then the
    /// slot looks with `waitpid` every [`super::slot::NO_PIDFD_POLL`]).
    pub(super) pidfd: Option<OwnedFd>,
    /// Its wait status, once collected.
    status: Option<i32>,
}

/// Start a worker for `slot`.
pub(super) fn spawn(ctx: &WorkerContext, slot: usize, generation: u64) -> io::Result<Process> {
    let (items_child, items) = pipe()?;
    let (replies, replies_child) = pipe()?;
    let argv = ctx.spec.argv(&ctx.poolscope);
    let mut command = Command::new(&argv[0]);
    let (child_in, child_out) = (items_child.as_raw_fd(), replies_child.as_raw_fd());
    command
        .args(&argv[1..])
        .current_dir(&ctx.spec.cwd)
        .envs(ctx.spec.env.iter().map(|(k, v)| (k, v)))
        .env("POOLSCOPE_SLOT", slot.to_string())
        .env("POOLSCOPE_RUN", ctx.run.run_dir.as_os_str())
        .env(
            MARKER_VAR,
            format!("{}w{slot}.{generation}/", ctx.run.marker.prefix()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure only calls fcntl and dup2, which are async-signal-safe, on
    // descriptors that stay open in the parent until after spawn returns.
    unsafe {
        command.pre_exec(move || place_protocol_fds(child_in, child_out));
    }
    let mut child = command.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot start the worker `{}`: {e}",
                argv[0].to_string_lossy()
            ),
        )
    })?;
    drop(items_child);
    drop(replies_child);
    let pid = child.id();
    let output = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    // The worker is reaped with wait4 by its slot, never through `Child`.
    drop(child);
    for fd in output.iter().flatten().chain([&items, &replies]) {
        set_nonblocking(fd)?;
    }
    Ok(Process {
        pid,
        items: Some(items),
        replies: Some(replies),
        output,
        pidfd: pidfd_open(pid),
        status: None,
    })
}

/// In the child: the items pipe becomes fd 3 and the replies pipe fd 4. Both are first
/// copied above 10, so neither can be overwritten by the other's `dup2`.
fn place_protocol_fds(items: RawFd, replies: RawFd) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors this process owns; both are async-signal-safe.
    unsafe {
        let high_items = libc::fcntl(items, libc::F_DUPFD_CLOEXEC, 10);
        let high_replies = libc::fcntl(replies, libc::F_DUPFD_CLOEXEC, 10);
        if high_items < 0 || high_replies < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::dup2(high_items, ITEMS_FD) < 0 || libc::dup2(high_replies, REPLIES_FD) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Process {
    /// Signal every process of the worker's group.
    pub(super) fn signal(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid as i32), signal);
    }

    /// Whether it has exited, without waiting (its status is kept for [`Process::reap`]).
    pub(super) fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let mut status = 0;
        // SAFETY: status is valid for writes; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == self.pid as libc::pid_t {
            self.status = Some(status);
        }
        self.status.is_some()
    }

    /// Reap the worker: its wait status (blocking; call once it has exited).
    pub(super) fn reap(&mut self) -> io::Result<i32> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let mut status = 0;
        loop {
            // SAFETY: status is valid for writes; rusage may be null.
            let r = unsafe {
                libc::wait4(
                    self.pid as libc::pid_t,
                    &mut status,
                    0,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// A pipe with both ends close-on-exec: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
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
