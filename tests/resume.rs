//! kill -9 mid-run, then `--resume`: every task ends with exactly one successful joblog
//! line, and nothing that had finished runs again.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use common::*;

#[test]
fn resume_after_kill_9_runs_only_what_did_not_finish() {
    let marks = tempfile::tempdir().expect("tmp");
    let dir = task_dir(&format!(
        "[pool]\nworkers = 2\n\n[each]\nrange = [1, 12]\nsh = \"echo ran >> {}/ran-{{#}}; sleep 0.3\"\n",
        marks.path().display()
    ));
    let out = tempfile::tempdir().expect("tmp");
    let mut child = spawn_run(dir.path(), out.path());
    let log = out.path().join("joblog.tsv");
    let some_done = wait_for(Duration::from_secs(30), || {
        fs::read_to_string(&log).is_ok_and(|t| t.lines().count() > 4)
    });
    assert!(some_done, "no task finished");
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let before: Vec<usize> = joblog(out.path())
        .iter()
        .filter(|r| r[6] == "0" && r[7] == "0")
        .map(|r| r[0].parse().expect("seq"))
        .collect();
    assert!(
        !before.is_empty() && before.len() < 12,
        "killed too late: {before:?}"
    );

    let o = run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--out",
        out.path().to_str().expect("utf8"),
        "--resume",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut ok_lines: BTreeMap<usize, usize> = BTreeMap::new();
    for r in joblog(out.path()) {
        if r[6] == "0" && r[7] == "0" {
            *ok_lines.entry(r[0].parse().expect("seq")).or_default() += 1;
        }
    }
    assert_eq!(
        ok_lines.keys().copied().collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert!(ok_lines.values().all(|&n| n == 1), "{ok_lines:?}");
    for seq in before {
        let runs = fs::read_to_string(marks.path().join(format!("ran-{seq}"))).expect("mark");
        assert_eq!(
            runs.lines().count(),
            1,
            "task {seq} finished before the kill but ran again"
        );
    }
    let s = summary(out.path());
    assert_eq!(
        s["totals"]["ok"].as_u64().expect("ok") + s["totals"]["skipped"].as_u64().expect("skipped"),
        12
    );
}

#[test]
fn resume_without_an_earlier_run_says_so() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let o = run(&["run", dir.path().to_str().expect("utf8"), "--resume"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: --resume found no earlier run"),
        "{}",
        stderr(&o)
    );
}
