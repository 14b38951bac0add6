//! kill -9 mid-run, then `--resume`: every task ends with exactly one successful joblog
//! line, and nothing that had finished runs again. A joblog line belongs to a task by its
//! Seq and Command, or by its Command alone once the task list changed.

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

/// How many times each input was run, from the lines tasks appended to `marks`.
fn runs_of(marks: &std::path::Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for line in fs::read_to_string(marks).unwrap_or_default().lines() {
        *runs.entry(line.to_string()).or_default() += 1;
    }
    runs
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// `[each]` over `inputs`: each task notes its input in `marks`, and fails if the file
/// says `bad`.
fn failing_on_bad(inputs: &str, marks: &std::path::Path) -> tempfile::TempDir {
    task_dir(&format!(
        "[pool]\nworkers = 2\n\n[each]\ninputs = \"{inputs}\"\nsh = \"echo {{}} >> {}; test \\\"$(cat {{}})\\\" != bad\"\n",
        marks.display()
    ))
}

const LIST_CHANGED: &str =
    "note: the task list changed since that run; tasks are matched by their command";

#[test]
fn resume_reruns_the_fixed_task_and_never_takes_the_records_folder_for_an_input() {
    let marks = tempfile::tempdir().expect("tmp");
    let ran = marks.path().join("ran");
    let dir = failing_on_bad("*", &ran);
    for (name, text) in [("a.txt", "ok"), ("b.txt", "bad"), ("c.txt", "ok")] {
        fs::write(dir.path().join(name), text).expect("write");
    }
    let path = dir.path().to_str().expect("utf8");
    let o = run(&["run", path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let first = counts(&[
        ("a.txt", 1),
        ("b.txt", 1),
        ("c.txt", 1),
        ("poolscope.toml", 1),
    ]);
    assert_eq!(runs_of(&ran), first);
    let runs = dir.path().join(".poolscope/runs");
    assert_eq!(fs::read_dir(&runs).expect("runs").count(), 1);
    let dry = run(&["run", path, "--dry-run"]);
    assert!(
        stdout(&dry).contains("4 tasks:") && !stdout(&dry).contains(".poolscope"),
        "{}",
        stdout(&dry)
    );

    fs::write(dir.path().join("b.txt"), "ok").expect("fix");
    let o = run(&["run", path, "--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    let mut again = first.clone();
    again.insert("b.txt".to_string(), 2);
    assert_eq!(runs_of(&ran), again, "only the fixed task ran again");
    let run_dir = fs::read_dir(&runs)
        .expect("runs")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    let ok: Vec<(String, String)> = joblog(&run_dir)
        .into_iter()
        .filter(|r| r[6] == "0" && r[7] == "0")
        .map(|r| (r[0].clone(), r[8].clone()))
        .collect();
    assert_eq!(ok.len(), 4, "{ok:?}");
    assert!(
        ok.iter()
            .any(|(seq, cmd)| seq == "2" && cmd.starts_with("echo b.txt >>")),
        "{ok:?}"
    );
    let s = summary(&run_dir);
    assert_eq!(s["totals"]["ok"], 1);
    assert_eq!(s["totals"]["skipped"], 3);
}

#[test]
fn resume_finds_tasks_by_their_command_when_a_file_sorts_in_before_them() {
    let marks = tempfile::tempdir().expect("tmp");
    let ran = marks.path().join("ran");
    let dir = failing_on_bad("*.jpg", &ran);
    for (name, text) in [("b.jpg", "ok"), ("c.jpg", "bad"), ("d.jpg", "ok")] {
        fs::write(dir.path().join(name), text).expect("write");
    }
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        runs_of(&ran),
        counts(&[("b.jpg", 1), ("c.jpg", 1), ("d.jpg", 1)])
    );

    fs::write(dir.path().join("a.jpg"), "ok").expect("write");
    fs::write(dir.path().join("c.jpg"), "ok").expect("fix");
    let o = run_into(dir.path(), out.path(), &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(LIST_CHANGED), "{}", stderr(&o));
    assert_eq!(
        runs_of(&ran),
        counts(&[("a.jpg", 1), ("b.jpg", 1), ("c.jpg", 2), ("d.jpg", 1)]),
        "the new task and the failed one ran, the others did not"
    );
    let new_lines: Vec<(String, String)> = joblog(out.path())
        .into_iter()
        .skip(3)
        .map(|r| {
            (
                r[0].clone(),
                r[8].split(' ').nth(1).unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut new_lines = new_lines;
    new_lines.sort();
    assert_eq!(
        new_lines,
        [
            ("1".to_string(), "a.jpg".to_string()),
            ("3".to_string(), "c.jpg".to_string())
        ]
    );
    let s = summary(out.path());
    assert_eq!(s["totals"]["ok"], 2);
    assert_eq!(s["totals"]["skipped"], 2);

    // Once more: the old lines still match by command, nothing runs.
    let o = run_into(dir.path(), out.path(), &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(out.path())["totals"]["skipped"], 4);
    assert_eq!(runs_of(&ran).values().sum::<usize>(), 5);
}

#[test]
fn resume_finds_persistent_worker_items_by_their_item() {
    let marks = tempfile::tempdir().expect("tmp");
    let ran = marks.path().join("ran");
    let dir = task_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\n[each]\ninputs = \"*.txt\"\n",
    );
    fs::write(
        dir.path().join("work.py"),
        format!(
            "def f(item):\n    with open({:?}, 'a') as m:\n        m.write(item + '\\n')\n    with open(item) as t:\n        if t.read() == 'bad':\n            raise ValueError(item)\n    return item\n",
            ran.display().to_string()
        ),
    )
    .expect("write work.py");
    for (name, text) in [("b.txt", "ok"), ("c.txt", "bad"), ("d.txt", "ok")] {
        fs::write(dir.path().join(name), text).expect("write");
    }
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let rows = joblog(out.path());
    assert!(
        rows.iter()
            .any(|r| r[0] == "2" && r[6] != "0" && r[8] == "\"c.txt\""),
        "a worker's Command column is its item: {rows:?}"
    );

    fs::write(dir.path().join("a.txt"), "ok").expect("write");
    fs::write(dir.path().join("c.txt"), "ok").expect("fix");
    let o = run_into(dir.path(), out.path(), &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(LIST_CHANGED), "{}", stderr(&o));
    assert_eq!(
        runs_of(&ran),
        counts(&[("a.txt", 1), ("b.txt", 1), ("c.txt", 2), ("d.txt", 1)])
    );
}
