//! The lock of a run directory: one live run records into it at a time.
//!
//! `lock` in the run directory is held with an exclusive `flock` for the whole run and
//! holds the PID of the run that holds it; it is removed as the run ends. A second run
//! into the directory, or a `--resume` of it while it is live, is refused with that PID.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub const FILE: &str = "lock";

/// A live run holds the lock but has not written its PID yet: look again this often…
const PID_LOOK_EVERY: Duration = Duration::from_millis(10);
/// …this many times before saying so without the PID.
const PID_LOOKS: u32 = 100;

/// A run directory held by this process; released (and its `lock` file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// Unlocked when dropped, after the file is removed.
    _lock: Flock<File>,
}

/// The run directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live run holds it: its PID, when it could be read.
    #[error("it is in use by a live run{}", pid.map_or(String::new(), |p| format!(" (PID {p})")))]
    Busy { pid: Option<u32> },
    #[error("cannot lock it: {0}")]
    Io(#[from] io::Error),
}

/// Lock `run_dir` for this process's run, without waiting.
pub fn acquire(run_dir: &Path) -> Result<RunLock, LockError> {
    let path = run_dir.join(FILE);
    let mut looks = 0;
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The run that held it may have ended and removed the file between our
                // open and our lock: then what we hold is no longer the run's lock.
                if !is_at(&lock, &path) {
                    continue;
                }
                lock.set_len(0)?;
                writeln!(&mut *lock, "{}", std::process::id())?;
                return Ok(RunLock { path, _lock: lock });
            }
            Err((file, Errno::EWOULDBLOCK)) => match holder(file) {
                Some(pid) => return Err(LockError::Busy { pid: Some(pid) }),
                None if looks < PID_LOOKS => {
                    looks += 1;
                    std::thread::sleep(PID_LOOK_EVERY);
                }
                None => return Err(LockError::Busy { pid: None }),
            },
            Err((_, errno)) => return Err(io::Error::from(errno).into()),
        }
    }
}

/// Is `file` the file now at `path`?
fn is_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The PID the lock file's holder wrote in it, if it has.
fn holder(mut file: File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked: whoever opened it meanwhile sees it is gone.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_names_its_holder_and_is_free_once_released() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = acquire(dir.path()).expect("first lock");
        let pid = fs::read_to_string(dir.path().join(FILE)).expect("lock file");
        assert_eq!(pid.trim(), std::process::id().to_string());
        // A second open file description, as another process has: refused.
        match acquire(dir.path()) {
            Err(LockError::Busy { pid: Some(p) }) => assert_eq!(p, std::process::id()),
            other => panic!("not refused: {other:?}"),
        }
        drop(lock);
        assert!(!dir.path().join(FILE).exists(), "the lock file is removed");
        let again = acquire(dir.path()).expect("free again");
        drop(again);
    }
}
