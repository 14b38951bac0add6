//! Standard output that does not take the summary (a full disk, a closed pipe) is exit 1
//! with a sentence, and the run's records on disk are whole.

mod common;

use std::fs::OpenOptions;
use std::process::Stdio;

use common::*;

const TASKS: &str = "[each]\nrange = [1, 3]\nsh = \"echo {}\"\n";

/// A pipe whose reading end is already closed: a write into it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Stdio::from(write)
}

fn full_disk() -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// Run the tasks with `flags`, stdout into `stdout`: the exit code and stderr, after
/// checking the run's records are there.
fn run_with_stdout(flags: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let dir = task_dir(TASKS);
    let out = tempfile::tempdir().expect("tmp");
    let o = app()
        .arg("run")
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .args(flags)
        .stdout(stdout)
        .output()
        .expect("poolscope runs");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    let s = summary(out.path());
    assert_eq!(s["totals"]["ok"], 3, "the run itself went on");
    assert_eq!(joblog(out.path()).len(), 3);
    (o.status.code(), err)
}

#[test]
fn a_summary_into_a_full_disk_is_exit_1_with_a_sentence() {
    for flags in [&["--json"][..], &[]] {
        let (code, err) = run_with_stdout(flags, full_disk());
        assert_eq!(code, Some(1), "{flags:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: cannot write the summary to standard output")
                && last.contains("No space left on device")
                && last.contains("the run is recorded in"),
            "{flags:?}: {err}"
        );
    }
}

#[test]
fn a_summary_into_a_closed_pipe_is_exit_1_with_a_sentence() {
    for flags in [&["--json"][..], &[]] {
        let (code, err) = run_with_stdout(flags, closed_pipe());
        assert_eq!(code, Some(1), "{flags:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: cannot write the summary to standard output")
                && last.contains("Broken pipe")
                && last.contains("the records on disk are not affected"),
            "{flags:?}: {err}"
        );
    }
}

#[test]
fn a_load_report_into_a_full_disk_or_a_closed_pipe_is_exit_1() {
    for stdout in [full_disk(), closed_pipe()] {
        let dir = task_dir(TASKS);
        let o = app()
            .arg("run")
            .arg(dir.path())
            .arg("--dry-run")
            .stdout(stdout)
            .output()
            .expect("poolscope runs");
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).starts_with("error: cannot write the load report to standard output"),
            "{}",
            stderr(&o)
        );
    }
}
