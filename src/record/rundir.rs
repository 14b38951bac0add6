//! Where runs are recorded: `DIR/.poolscope/runs/<UTC timestamp>/` unless `--out` says.
//! A run holds its directory's [`super::lock`] while it records.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folder of a task directory that holds its records: never a task, never an input.
pub const RECORDS: &str = ".poolscope";

/// Folder of a task directory that holds its runs.
pub fn runs_folder(root: &Path) -> PathBuf {
    root.join(RECORDS).join("runs")
}

/// A run directory name for `now`, e.g. `2026-11-25T19-03-12.123Z`.
pub fn stamp(now: SystemTime) -> String {
    humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(':', "-")
}

/// Create a fresh run directory (and its `outputs/`) under `root`'s runs folder, named
/// for `now`, or with `-2`, `-3`, ... after that name while it is taken. Each name is
/// taken by `create_dir`, which fails if the directory exists, so that runs started in
/// the same millisecond get one directory each.
pub fn create_fresh(root: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let stamp = stamp(now);
    let base = runs_folder(root);
    fs::create_dir_all(&base)?;
    let mut n = 1;
    loop {
        let dir = match n {
            1 => base.join(&stamp),
            n => base.join(format!("{stamp}-{n}")),
        };
        match fs::create_dir(&dir) {
            Ok(()) => {
                create(&dir)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The most recent run directory of `root`, by name.
pub fn latest_run(root: &Path) -> Option<PathBuf> {
    let entries = fs::read_dir(runs_folder(root)).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .max()
}

/// The folder of a run directory that holds what the tasks printed.
pub const OUTPUTS: &str = "outputs";

/// Create the run directory `dir` and its `outputs/` folder.
pub fn create(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir.join(OUTPUTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_the_same_millisecond_get_a_directory_each() {
        let root = tempfile::tempdir().expect("temp dir");
        let now = SystemTime::now();
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..16)
                .map(|_| s.spawn(|| create_fresh(root.path(), now).expect("created")))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("joined"))
                .collect()
        });
        let distinct: std::collections::BTreeSet<&PathBuf> = dirs.iter().collect();
        assert_eq!(distinct.len(), 16, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.join(OUTPUTS).is_dir()));
        assert!(dirs.contains(&runs_folder(root.path()).join(stamp(now))));
    }
}
