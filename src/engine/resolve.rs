//! Finding a program on `PATH` once per run instead of once per spawn.
//!
//! `execvp` tries every `PATH` entry in turn, and each miss is a failed `execve` in the
//! child: with a long `PATH` that is most of what spawning a tiny task costs. A run
//! resolves each program name once, for all its slots, and spawns the absolute path,
//! keeping `argv[0]` as written.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Program names already looked up, by name and the `PATH` they were looked up in.
///
/// Shared by a run's slots: as a run starts, every slot spawns the same program at once,
/// and one of them looks it up while the others wait for its answer instead of each
/// trying the same `PATH` entries (each try a system call, slow on a cold start).
#[derive(Debug, Default)]
pub struct Resolver {
    found: Mutex<HashMap<Lookup, Option<PathBuf>>>,
}

/// A program name and the `PATH` it is looked up in (`None`: poolscope's own).
type Lookup = (String, Option<OsString>);

impl Resolver {
    /// The first executable match for `program` on `path` (the task's own `PATH`, or
    /// poolscope's). `None` if nothing matches, or if `program` is empty or holds a slash
    /// (it names its file itself, and is not looked up).
    pub fn resolve(&self, program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
        if program.contains('/') || program.is_empty() {
            return None;
        }
        let key = (program.to_string(), path.map(OsStr::to_os_string));
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = found.get(&key) {
            return hit.clone();
        }
        let search = path
            .map(OsStr::to_os_string)
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let hit = std::env::split_paths(&search)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(program))
            .find(|candidate| executable(candidate));
        found.insert(key, hit.clone());
        hit
    }
}

fn executable(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_the_path_once() {
        let r = Resolver::default();
        let sh = r.resolve("sh", Some(OsStr::new("/nonexistent:/bin:/usr/bin")));
        assert!(
            sh.as_ref()
                .is_some_and(|p| p.ends_with("sh") && p.is_absolute())
        );
        assert_eq!(
            r.resolve("sh", Some(OsStr::new("/nonexistent:/bin:/usr/bin"))),
            sh
        );
        assert_eq!(r.resolve("no-such-program-xyz", None), None);
        assert_eq!(r.resolve("./local", None), None);
        assert_eq!(r.resolve("sh", Some(OsStr::new("/nonexistent"))), None);
    }
}
