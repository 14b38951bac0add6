//! Never an orphan.
//!
//! Every process a run starts carries `POOLSCOPE_GUARD=<token>/<run>/<task>.<attempt>/`
//! in its environment, and so does everything it spawns unless it scrubs its environment.
//! That marker finds a task's processes in `/proc` even after they left its process group
//! (`setsid`) or were re-parented (double fork).
//!
//! Three layers use it:
//! 1. when a task's main process exits, its process group is killed, and if its output
//!    pipes still stay open, the processes carrying its marker are killed too;
//! 2. when a run ends, every process still carrying the run's marker is killed;
//! 3. the guardian, a small child process (`poolscope __guardian`) started before the first
//!    task, blocks reading a pipe whose only write end this process holds. However this
//!    process ends (exit, panic, `kill -9`), the pipe closes, and the guardian kills every
//!    process that carries this process's token, then exits. It ignores SIGINT, SIGTERM and
//!    SIGHUP and sits in its own process group, so Ctrl-C in the terminal does not reach it.
//!    The two watch each other: should the guardian die, this process starts a new one.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

use crate::event::AttemptKey;

/// The environment variable that marks every process of a run.
pub const MARKER_VAR: &str = "POOLSCOPE_GUARD";

/// This process's token: unique per poolscope process.
pub fn process_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{:x}", std::process::id(), nanos)
    })
}

/// The marker prefix of one run.
#[derive(Debug, Clone)]
pub struct RunMarker {
    prefix: String,
}

impl RunMarker {
    /// A marker no other run of this process shares.
    pub fn new() -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
        RunMarker {
            prefix: format!("{}/{run}/", process_token()),
        }
    }

    /// Prefix every process of this run carries.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full marker of one attempt.
    pub fn attempt(&self, key: AttemptKey) -> String {
        format!("{}{}.{}/", self.prefix, key.seq, key.attempt)
    }
}

impl Default for RunMarker {
    fn default() -> Self {
        Self::new()
    }
}

/// PIDs of the live processes whose marker starts with `prefix` (this process excluded).
pub fn find(prefix: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={prefix}");
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut buf = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        buf.clear();
        let Ok(mut file) = fs::File::open(entry.path().join("environ")) else {
            continue;
        };
        if file.read_to_end(&mut buf).is_err() {
            continue;
        }
        if buf
            .split(|&b| b == 0)
            .any(|var| var.starts_with(needle.as_bytes()))
        {
            found.push(pid);
        }
    }
    found
}

/// Kill (SIGKILL) every process whose marker starts with `prefix`, again and again until
/// none is left or `limit` has passed. Returns how many were killed.
pub fn sweep(prefix: &str, limit: Duration) -> usize {
    let deadline = std::time::Instant::now() + limit;
    let mut killed = 0;
    loop {
        let pids = find(prefix);
        if pids.is_empty() {
            return killed;
        }
        for pid in pids {
            if signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        if std::time::Instant::now() >= deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The write end of the live guardian's pipe; held until this process ends.
static GUARDIAN: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Start the guardian (once per process) by running `exe __guardian <token>/`. Should the
/// guardian itself die, a watcher thread starts a new one.
pub fn start_guardian(exe: &Path) -> io::Result<()> {
    let mut live = GUARDIAN.lock().unwrap_or_else(|e| e.into_inner());
    if live.is_none() {
        *live = Some(spawn_guardian(exe.to_path_buf())?);
    }
    Ok(())
}

fn spawn_guardian(exe: PathBuf) -> io::Result<OwnedFd> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
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
    // The guardian writes one byte once it is ready, then nothing: its stdout reaches end
    // of file when it dies. One that dies before it is ready is not a guardian at all (a
    // wrong executable) and is not started again.
    let mut alive = child.stdout.take();
    std::thread::Builder::new()
        .name("poolscope-guardian-watch".to_string())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let ready = alive
                .as_mut()
                .is_some_and(|out| matches!(out.read(&mut byte), Ok(1)));
            if ready && let Some(out) = &mut alive {
                let _ = out.read(&mut byte);
            }
            let _ = child.wait();
            if ready {
                std::thread::sleep(Duration::from_millis(50));
                let mut live = GUARDIAN.lock().unwrap_or_else(|e| e.into_inner());
                *live = spawn_guardian(exe).ok();
            }
        })?;
    Ok(write)
}

/// Body of `poolscope __guardian PREFIX`: wait for the pipe on stdin to close, then kill
/// every process whose marker starts with `prefix`.
pub fn guardian_main(prefix: &str) -> ! {
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
    {
        use std::io::Write as _;
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"R").and_then(|()| out.flush());
    }
    let mut stdin = io::stdin().lock();
    let mut byte = [0u8; 64];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    sweep(prefix, Duration::from_millis(800));
    std::process::exit(0)
}
