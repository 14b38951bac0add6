//! Starting one worker process: the protocol's pipes on its fds 3 and 4, stdout and stderr
//! piped, its own process group, and a pidfd to notice its exit (see [`child`]).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;

use crate::engine::child;
use crate::engine::process::is_transient;
use crate::event::Outcome;
use crate::guard::MARKER_VAR;

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
    /// slot looks every [`super::slot::NO_PIDFD_POLL`]).
    pub(super) pidfd: Option<OwnedFd>,
}

/// Why a worker did not start.
pub(super) struct SpawnError {
    pub(super) error: io::Error,
    /// The system refused for a moment (see [`is_transient`]).
    pub(super) transient: bool,
}

impl From<io::Error> for SpawnError {
    fn from(error: io::Error) -> Self {
        SpawnError {
            transient: is_transient(&error),
            error,
        }
    }
}

/// Start a worker for `slot`.
pub(super) fn spawn(
    ctx: &WorkerContext,
    slot: usize,
    generation: u64,
) -> Result<Process, SpawnError> {
    let (items_child, items) = pipe()?;
    let (replies, replies_child) = pipe()?;
    let argv = ctx.spec.argv(&ctx.poolscope);
    let mut spec = child::Spec::new(&argv, &ctx.spec.cwd);
    for (k, v) in &ctx.spec.env {
        spec = spec.env(k, v);
    }
    let spec = spec
        .env("POOLSCOPE_SLOT", slot.to_string())
        .env("POOLSCOPE_RUN", ctx.run.run_dir.as_os_str())
        .env(
            MARKER_VAR,
            format!("{}w{slot}.{generation}/", ctx.run.marker.prefix()),
        )
        .protocol(items_child.as_fd(), replies_child.as_fd());
    let started = child::spawn(&spec).map_err(|e| SpawnError {
        transient: is_transient(&e),
        error: io::Error::new(
            e.kind(),
            format!(
                "cannot start the worker `{}`: {e}",
                argv[0].to_string_lossy()
            ),
        ),
    })?;
    drop(spec);
    drop((items_child, replies_child));
    let output = [Some(started.stdout), Some(started.stderr)];
    for fd in output.iter().flatten().chain([&items, &replies]) {
        child::set_nonblocking(fd)?;
    }
    Ok(Process {
        pid: started.pid,
        items: Some(items),
        replies: Some(replies),
        output,
        pidfd: started.pidfd,
    })
}

impl Process {
    /// Signal every process of the worker's group.
    pub(super) fn signal(&self, signal: Signal) {
        child::signal_group(self.pid, signal);
    }

    /// Whether it has exited, without reaping it.
    pub(super) fn has_exited(&self) -> bool {
        child::has_exited(self.pid)
    }

    /// Reap the worker: how it ended (blocking; call once it has exited).
    pub(super) fn reap(&self) -> io::Result<Outcome> {
        child::reap(self.pid).0
    }
}

/// A pipe with both ends close-on-exec: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}
