//! The guardian: a child process that outlives this one just long enough to clean up.
//!
//! It blocks reading a pipe whose only write end this process holds. However this process
//! ends (exit, panic, `kill -9`), the pipe closes, and the guardian kills every process
//! that carries this process's token, then exits. It ignores SIGINT, SIGTERM and SIGHUP
//! and sits in its own process group, so Ctrl-C in the terminal does not reach it, and it
//! holds none of this process's other files (a reader of poolscope's output is not kept
//! waiting for it).
//!
//! The two watch each other: the guardian holds the write end of a second pipe, whose end
//! of file tells this process that it died. No thread waits for that: a run looks at the
//! pipe every [`CHECK_EVERY`] ([`keep_guardian`]) and starts a new guardian if the last one
//! died after saying it was ready; [`guardian_running`] and the start of every run look too.
//!
//! It is started as `poolscope __guardian <token>/` ([`start_guardian`]), by the command
//! line, the app and the tests that run the engine in-process alike, and again after a
//! guardian died.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

use super::{MARKER_VAR, process_token, sweep};

/// The live guardian, if any; its pipe's write end is held until this process ends.
static GUARDIAN: Mutex<Option<Guardian>> = Mutex::new(None);

/// How often a run looks whether its guardian still lives.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// A guardian started by this process.
struct Guardian {
    pid: Pid,
    /// The pipe it watches: its end of file tells the guardian this process ended.
    _watched: OwnedFd,
    /// The read end of the pipe it writes [`READY`] on, non-blocking; end of file once it died.
    alive: File,
    /// It said it was ready: a guardian, not a wrong executable that exits at once.
    ready: bool,
    /// What runs the guardian that replaces it.
    exe: PathBuf,
}

impl Guardian {
    fn new(pid: Pid, watched: OwnedFd, alive: OwnedFd, exe: PathBuf) -> io::Result<Self> {
        nix::fcntl::fcntl(&alive, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Guardian {
            pid,
            _watched: watched,
            alive: File::from(alive),
            ready: false,
            exe,
        })
    }

    /// Whether it still lives, reading what it said meanwhile. Never blocks.
    fn lives(&mut self) -> bool {
        let mut buf = [0u8; 16];
        loop {
            match nix::unistd::read(&self.alive, &mut buf) {
                Ok(0) => return false,
                Ok(n) => self.ready |= buf[..n].contains(&READY),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// What the guardian writes on its second pipe once it is ready.
const READY: u8 = b'R';

/// How long after this process's end the guardian starts killing what it left.
const SWEEP_AFTER: Duration = Duration::from_millis(10);

/// The guardian's process name (`/proc/PID/comm`, what `ps` and `top` show).
pub const GUARDIAN_NAME: &CStr = c"poolscope-guard";

/// Start the guardian (once per process) by running `exe __guardian <token>/`.
pub fn start_guardian(exe: &Path) -> io::Result<()> {
    let mut live = lock();
    forget_if_dead(&mut live);
    if live.is_none() {
        *live = Some(spawn_guardian(exe.to_path_buf())?);
    }
    Ok(())
}

/// Whether a guardian watches this process now.
pub fn guardian_running() -> bool {
    let mut live = lock();
    forget_if_dead(&mut live);
    live.is_some()
}

/// Look whether the guardian still lives; if it died after saying it was ready, start a
/// new one. One that died before it was ready is not a guardian at all (a wrong
/// executable) and is not replaced. A live run calls this every [`CHECK_EVERY`].
pub fn keep_guardian() {
    let mut live = lock();
    if let Some(dead) = forget_if_dead(&mut live)
        && dead.ready
    {
        *live = spawn_guardian(dead.exe).ok();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Guardian>> {
    GUARDIAN.lock().unwrap_or_else(|e| e.into_inner())
}

/// If the guardian died, reap it and take it out of `live`.
fn forget_if_dead(live: &mut Option<Guardian>) -> Option<Guardian> {
    let guardian = live.as_mut()?;
    if guardian.lives() {
        return None;
    }
    let _ = nix::sys::wait::waitpid(guardian.pid, None);
    live.take()
}

fn spawn_guardian(exe: PathBuf) -> io::Result<Guardian> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut child = Command::new(&exe)
        .arg("__guardian")
        .arg(format!("{}/", process_token()))
        .stdin(Stdio::from(read))
        .stdout(Stdio::piped())
        // Holding poolscope's stderr would keep a reader of it waiting for the sweep.
        .stderr(Stdio::null())
        .env_remove(MARKER_VAR)
        .process_group(0)
        .spawn()?;
    let alive = child
        .stdout
        .take()
        .map(OwnedFd::from)
        .ok_or_else(|| io::Error::other("the guardian's stdout is missing"))?;
    let pid = Pid::from_raw(child.id() as i32);
    // Reaped with waitpid once its pipe says it died, not through `Child`.
    drop(child);
    Guardian::new(pid, write, alive, exe)
}

/// Close every descriptor but 0, 1 and 2: whatever poolscope's own parent let it inherit
/// (a build tool's jobserver pipe, say), which would keep a reader of it waiting.
fn close_inherited() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Listed first: the listing holds a descriptor of its own until it is dropped.
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}

/// The guardian's life, as `poolscope __guardian PREFIX` (stdin: the
/// pipe to watch, stdout: the pipe that says it is alive): say ready on stdout, wait for
/// stdin to reach end of file, then kill every process whose marker starts with `prefix`,
/// and exit.
pub fn guardian_main(prefix: &str) -> ! {
    let _ = nix::sys::prctl::set_name(GUARDIAN_NAME);
    close_inherited();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
    let _ = nix::unistd::write(io::stdout().as_fd(), &[READY]);
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(io::stdin().as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    // What is left gets killed a moment later, which leaves this process's exit and
    // whoever waits for it the CPU meanwhile.
    std::thread::sleep(SWEEP_AFTER);
    sweep(prefix, Duration::from_millis(800));
    std::process::exit(0)
}
