//! Runs that meet in one run directory: runs started at once get a directory each, and a
//! run or a `--resume` into a directory that a live run holds is refused with that run's
//! PID, leaving its records whole.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// The run directories of a task directory.
fn runs(dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = fs::read_dir(dir.join(".poolscope/runs"))
        .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    runs.sort();
    runs
}

/// Parse `file` of `run` as JSON, or fail naming it.
fn json(run: &Path, file: &str) -> serde_json::Value {
    let text = fs::read_to_string(run.join(file)).expect(file);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", run.join(file).display()))
}

#[test]
fn runs_started_at_once_get_a_directory_each() {
    let dir = task_dir("[[task]]\nsh = \"true\"\n[[task]]\nsh = \"echo two\"\n");
    const ROUNDS: usize = 25;
    const AT_ONCE: usize = 8;
    for _ in 0..ROUNDS {
        let children: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                app()
                    .arg("run")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn poolscope")
            })
            .collect();
        for child in children {
            let o = child.wait_with_output().expect("wait");
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
    let runs = runs(dir.path());
    assert_eq!(
        runs.len(),
        ROUNDS * AT_ONCE,
        "one directory per run: {runs:?}"
    );
    for run in &runs {
        let s = json(run, "summary.json");
        assert_eq!(s["totals"]["ok"], 2, "{}", run.display());
        assert_eq!(s["run_dir"], run.display().to_string());
        json(run, "trace.json");
        assert_eq!(joblog(run).len(), 2, "{}: one line per task", run.display());
        assert!(!run.join("lock").exists(), "{}: lock left", run.display());
    }
}

/// A run in the background, killed if the test ends before it does.
struct Live(std::process::Child);

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_live_run_keeps_its_directory_from_a_resume_and_a_second_run() {
    // Five quick tasks, then one that waits for `release`.
    let mut manifest = String::from("[pool]\nworkers = 2\n");
    for n in 1..=5 {
        manifest.push_str(&format!("[[task]]\nsh = \"echo {n} >> marks\"\n"));
    }
    manifest.push_str("[[task]]\nsh = \"while [ ! -e release ]; do sleep 0.02; done\"\n");
    let dir = task_dir(&manifest);
    let mut live = Live(
        app()
            .arg("run")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn poolscope"),
    );
    let quick_done = || {
        runs(dir.path()).first().is_some_and(|run| {
            fs::read_to_string(run.join("joblog.tsv")).is_ok_and(|t| t.lines().count() == 6)
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), quick_done),
        "the quick tasks did not finish"
    );
    let live_dir = runs(dir.path()).remove(0);
    let pid = format!("PID {}", live.0.id());
    // A resume of the latest run, which is live; then a second run into it. Neither may
    // start a task (a time limit keeps them from waiting on the live run's last task).
    let resume = run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--resume",
        "--timeout",
        "20s",
    ]);
    let second = app()
        .arg("run")
        .arg(dir.path())
        .arg("--out")
        .arg(&live_dir)
        .args(["--timeout", "20s"])
        .output()
        .expect("poolscope runs");
    for (what, o) in [("--resume", &resume), ("a second run", &second)] {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(&pid),
            "{what} names the live run's {pid}: {err}"
        );
        assert!(
            err.contains(&live_dir.display().to_string()),
            "{what}: {err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{what}: one sentence: {err}"
        );
    }
    fs::write(dir.path().join("release"), "").expect("release");
    let status = live.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    // The live run's records are whole: each task once, and nothing ran twice.
    let rows = joblog(&live_dir);
    let mut seqs: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    seqs.sort();
    assert_eq!(seqs, ["1", "2", "3", "4", "5", "6"], "{rows:?}");
    assert!(rows.iter().all(|r| r[6] == "0"), "{rows:?}");
    let mut marks: Vec<String> = fs::read_to_string(dir.path().join("marks"))
        .expect("marks")
        .lines()
        .map(str::to_string)
        .collect();
    marks.sort();
    assert_eq!(marks, ["1", "2", "3", "4", "5"], "each quick task ran once");
    assert_eq!(json(&live_dir, "summary.json")["totals"]["ok"], 6);
    json(&live_dir, "trace.json");
    assert_eq!(
        runs(dir.path()).len(),
        1,
        "the refused runs made no directory"
    );
    assert!(
        !live_dir.join("lock").exists(),
        "the lock is gone with its run"
    );
    let leftovers: Vec<_> = fs::read_dir(&live_dir)
        .expect("run dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Once the run is over, its directory takes a resume again.
    let o = run_into(dir.path(), &live_dir, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
