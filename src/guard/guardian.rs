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
//!
//! Where the kernel allows it, the guardian first puts its children in a PID namespace of
//! their own ([`super::namespace`]) and then starts every task of this process in it
//! ([`start_in_namespace`]): when the guardian dies, with poolscope or on its own, the
//! kernel kills every task process, so that even `pkill -9 poolscope`, which kills both
//! at once, leaves nothing. The pipe it watches is then the socket the requests come on.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

use super::spawner::{self, Request};
use super::{MARKER_VAR, namespace, process_token, sweep};

/// The live guardian, if any; its pipe's write end is held until this process ends.
static GUARDIAN: Mutex<Option<Guardian>> = Mutex::new(None);

/// How often a run looks whether its guardian still lives.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// A guardian started by this process.
struct Guardian {
    pid: Pid,
    /// The socket it watches: its end of file tells the guardian this process ended. With
    /// a namespace, tasks are started through it.
    socket: UnixStream,
    /// The read end of the pipe it said it was ready on, non-blocking; end of file once it
    /// died.
    alive: File,
    /// It said it was ready: a guardian, not a wrong executable that exits at once.
    ready: bool,
    /// How it cleans up.
    cleanup: Cleanup,
    /// What runs the guardian that replaces it.
    exe: PathBuf,
}

/// How the processes of this process's runs are cleaned up should it die.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Tasks run in a PID namespace that the kernel ends with the guardian.
    Namespace,
    /// The guardian kills what carries this process's marker; namespaces could not be
    /// used, for the reason given.
    Guardian { why: String },
}

impl Cleanup {
    /// The sentence the load report and the summary give when namespaces are not used.
    pub fn note(&self) -> Option<String> {
        match self {
            Cleanup::Namespace => None,
            Cleanup::Guardian { why } => Some(format!(
                "tasks do not run in a PID namespace ({why}): should poolscope and its \
                 guardian be killed together, task processes may be left running"
            )),
        }
    }
}

impl Guardian {
    /// Wait for the guardian's first line (see [`NAMESPACE`]), then watch its pipe
    /// without blocking.
    fn new(pid: Pid, socket: UnixStream, alive: OwnedFd, exe: PathBuf) -> io::Result<Self> {
        let mut alive = File::from(alive);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < 512 && matches!(alive.read(&mut byte), Ok(1)) && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let said = match (byte[0] == b'\n', line.as_slice()) {
            (true, [NAMESPACE]) => Some(Cleanup::Namespace),
            (true, [WITHOUT, b' ', why @ ..]) => Some(Cleanup::Guardian {
                why: String::from_utf8_lossy(why).into_owned(),
            }),
            _ => None,
        };
        let ready = said.is_some();
        let cleanup = said.unwrap_or_else(|| Cleanup::Guardian {
            why: "the guardian did not start".into(),
        });
        nix::fcntl::fcntl(&alive, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Guardian {
            pid,
            socket,
            alive,
            ready,
            cleanup,
            exe,
        })
    }

    /// Whether it still lives. Never blocks.
    fn lives(&mut self) -> bool {
        let mut buf = [0u8; 16];
        loop {
            match nix::unistd::read(&self.alive, &mut buf) {
                Ok(0) => return false,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The guardian's first line once it is ready: `N` with a namespace, or `R` and why it
/// has none.
const NAMESPACE: u8 = b'N';
const WITHOUT: u8 = b'R';

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

/// How the live guardian cleans up; `None` if none runs.
pub fn cleanup() -> Option<Cleanup> {
    let mut live = lock();
    forget_if_dead(&mut live);
    live.as_ref().map(|g| g.cleanup.clone())
}

/// Whether tasks start in the guardian's namespace now. A guardian that died after it was
/// ready is replaced first, so that no task starts outside a namespace while there can be
/// one.
pub fn namespace_ready() -> bool {
    let mut live = lock();
    replace_if_dead(&mut live);
    live.as_ref()
        .is_some_and(|g| g.cleanup == Cleanup::Namespace)
}

/// Start a task in the guardian's namespace, with `fds` as its 0, 1, 2, ...; `None` if
/// there is no such namespace (then the caller starts it itself). A guardian that does
/// not answer is ended and replaced, and asked again once.
pub fn start_in_namespace(request: &Request, fds: &[BorrowedFd<'_>]) -> Option<io::Result<u32>> {
    let mut live = lock();
    for _ in 0..2 {
        replace_if_dead(&mut live);
        let guardian = live.as_mut()?;
        if guardian.cleanup != Cleanup::Namespace {
            return None;
        }
        if let Ok(started) = spawner::start(&mut guardian.socket, request, fds) {
            return Some(started);
        }
        let _ = signal::kill(guardian.pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(guardian.pid, None);
    }
    None
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
    replace_if_dead(&mut lock());
}

fn replace_if_dead(live: &mut Option<Guardian>) {
    if let Some(dead) = forget_if_dead(live)
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
    let (mine, its) = UnixStream::pair()?;
    let mut child = Command::new(&exe)
        .arg("__guardian")
        .arg(format!("{}/", process_token()))
        .stdin(Stdio::from(OwnedFd::from(its)))
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
    Guardian::new(pid, mine, alive, exe)
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

/// The guardian's life, as `poolscope __guardian PREFIX` (stdin: the socket to watch,
/// stdout: the pipe that says it is alive): enter a PID namespace if it can, say so on
/// stdout, start tasks in it until stdin reaches end of file (or just wait for that),
/// then end the namespace, kill every process whose marker starts with `prefix`, and exit.
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
    let mut ready = io::stdout();
    // The socket moves off stdin, which gets /dev/null: one descriptor of it, not two.
    let watched = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixStream::from);
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    match (namespace::enter(), watched) {
        (Ok(init), Ok(mut socket)) => {
            let _ = ready.write_all(&[NAMESPACE, b'\n']);
            let _ = ready.flush();
            spawner::serve(&mut socket);
            // Every task process dies with the namespace's init.
            let _ = signal::kill(init.pid, Signal::SIGKILL);
        }
        (entered, watched) => {
            let why = entered
                .err()
                .unwrap_or_else(|| "its socket is missing".into());
            let _ = writeln!(ready, "{} {why}", WITHOUT as char);
            let _ = ready.flush();
            let mut buf = [0u8; 64];
            while let Ok(socket) = &watched {
                match nix::unistd::read(socket, &mut buf) {
                    Ok(0) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
    }
    // What is left gets killed a moment later, which leaves this process's exit and
    // whoever waits for it the CPU meanwhile.
    std::thread::sleep(SWEEP_AFTER);
    sweep(prefix, Duration::from_millis(800));
    std::process::exit(0)
}
