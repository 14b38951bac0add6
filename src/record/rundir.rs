//! Where runs are recorded: `DIR/.poolscope/runs/<UTC timestamp>/` unless `--out` says.

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

/// A fresh run directory name under `root`'s runs folder, e.g. `2026-11-25T19-03-12.123Z`.
pub fn new_run_dir(root: &Path, now: SystemTime) -> PathBuf {
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(':', "-");
    let base = runs_folder(root);
    let mut dir = base.join(&stamp);
    let mut n = 2;
    while dir.exists() {
        dir = base.join(format!("{stamp}-{n}"));
        n += 1;
    }
    dir
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
