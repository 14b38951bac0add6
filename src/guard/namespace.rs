//! The run's PID namespace: cleanup made the kernel's job.
//!
//! The guardian enters a new PID namespace for its children ([`enter`]) and forks that
//! namespace's first process, its init ([`Init`]), which has `PR_SET_PDEATHSIG` set to
//! SIGKILL. Tasks are then started inside the namespace (see [`super::spawner`]). When
//! the init dies, the kernel kills every process of the namespace; and the init dies with
//! the guardian, which ends as soon as poolscope does, however it ends. No task process
//! can leave the namespace: `setsid`, double forks and ignored signals change nothing.
//!
//! The namespace gets a mount namespace with it, where the init mounts the namespace's own
//! `/proc`, so that a task sees its own PIDs everywhere (`$$`, `os.getpid()` and
//! `/proc/PID` agree); poolscope's records and the app show the PIDs of poolscope's
//! namespace, as `ps` outside shows them.
//!
//! As root this needs no more than `unshare(CLONE_NEWPID | CLONE_NEWNS)`. Other users get a user
//! namespace with it that maps their own uid and gid to themselves, so tasks see their
//! real ids; inside it a set-uid program (`sudo`, say) gains no privilege. The namespace
//! is not entered where the kernel refuses it, or when `POOLSCOPE_NAMESPACE=off` is set:
//! then the guardian alone cleans up.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getgid, getuid};

/// The environment variable that, set to `off`, keeps tasks out of a PID namespace.
pub const SWITCH_VAR: &str = "POOLSCOPE_NAMESPACE";

/// The init's process name (`/proc/PID/comm`).
const INIT_NAME: &std::ffi::CStr = c"poolscope-init";

/// The namespace's init, as its parent (the guardian) holds it.
pub struct Init {
    pub pid: Pid,
    /// Its end of file tells the init that the guardian ended before its death signal
    /// was set.
    _watch: OwnedFd,
}

/// Put the calling process's future children in a new PID namespace, and start its init.
/// Must be called while the process has one thread. The error says why not, as a clause
/// ("PID namespaces are refused (EPERM)").
pub fn enter() -> Result<Init, String> {
    if std::env::var_os(SWITCH_VAR).is_some_and(|v| v == "off") {
        return Err(format!("{SWITCH_VAR}=off is set"));
    }
    let own = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    if unshare(own).is_err() {
        let (uid, gid) = (getuid(), getgid());
        unshare(CloneFlags::CLONE_NEWUSER | own)
            .map_err(|e| format!("PID namespaces are refused ({e})"))?;
        // Only the caller's own ids, mapped to themselves: tasks see their real uid.
        let maps = [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("{uid} {uid} 1")),
            ("/proc/self/gid_map", format!("{gid} {gid} 1")),
        ];
        for (file, map) in maps {
            fs::write(file, map).map_err(|e| format!("cannot write {file} ({e})"))?;
        }
    }
    // The init mounts a /proc of the namespace on this copy of the mounts; nothing of it
    // may reach poolscope's (mounts made outside still reach this one).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the namespace's mounts its own ({e})"))?;
    let (watch_read, watch_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot make a pipe ({e})"))?;
    // SAFETY: the guardian calls this while it has one thread, so the child may do
    // anything a process may do after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(watch_write);
            init_main(watch_read)
        }
        Ok(ForkResult::Parent { child }) => Ok(Init {
            pid: child,
            _watch: watch_write,
        }),
        Err(e) => Err(format!("cannot start the namespace's first process ({e})")),
    }
}

/// The init's life: die with the guardian, reap whatever is re-parented to it (the
/// orphans of tasks), and exit once the guardian has ended.
fn init_main(watch: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_name(INIT_NAME);
    // The guardian may have ended before the death signal was set: then the pipe says so.
    if ended(&watch, PollTimeout::ZERO) {
        std::process::exit(0);
    }
    // Tasks see their own namespace in /proc: their PIDs, as `$$` and `os.getpid()` give
    // them. Where this is refused (some containers), they see poolscope's.
    let _ = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    // Nothing of the guardian's stays open here: its pipes tell poolscope it is alive.
    if let Ok(null) = fs::File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let reaped = chld
        .thread_block()
        .ok()
        .and_then(|()| SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK).ok());
    loop {
        let Some(signals) = &reaped else {
            // Without a signalfd, look every second.
            if ended(&watch, PollTimeout::from(1000u16)) {
                std::process::exit(0);
            }
            reap_all();
            continue;
        };
        let mut fds = [
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            std::process::exit(0);
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            while let Ok(Some(_)) = signals.read_signal() {}
            reap_all();
        }
    }
}

/// Whether the guardian's end of `watch` has closed, waiting at most `timeout`.
fn ended(watch: &OwnedFd, timeout: PollTimeout) -> bool {
    let mut fds = [PollFd::new(watch.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0)
}

/// Reap every child that has exited.
fn reap_all() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
