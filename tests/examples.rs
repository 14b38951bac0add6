//! Every bundled example runs with its documented outcome.

mod common;

use common::*;

#[test]
fn sleep20_runs_twenty_tasks_on_five_workers() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("sleep20"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out_dir.path());
    assert_eq!(s["totals"]["ok"], 20);
    assert_eq!(s["config"]["workers"], 5);
    // Five slots, each ran four one-second tasks back to back.
    let slots: std::collections::BTreeSet<u64> = s["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["slot"].as_u64().expect("slot"))
        .collect();
    assert_eq!(slots, (1..=5).collect());
    let serial = s["serial_estimate_seconds"].as_f64().expect("serial");
    let wall = s["wall_seconds"].as_f64().expect("wall");
    assert!(
        serial >= 20.0,
        "20 tasks of 1 s sum to at least 20 s, got {serial}"
    );
    assert!(
        wall >= 4.0,
        "5 workers need at least 4 rounds of 1 s, got {wall}"
    );
    assert!(stdout(&o).contains("20 tasks: 20 ok, 0 failed, 0 timed out"));
}

#[test]
fn primes_keeps_every_core_busy() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("primes"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out_dir.path());
    assert_eq!(s["totals"]["ok"], 8);
    let first = std::fs::read_to_string(out_dir.path().join("outputs/1.out")).expect("output");
    // pi(280000) = 24432 (a sieve of Eratosthenes agrees).
    assert_eq!(first.trim(), "24432 primes below 280000");
    // CPU-bound: user time is most of each task's wall time.
    for t in s["tasks"].as_array().expect("tasks") {
        let cpu =
            t["user_seconds"].as_f64().expect("user") + t["system_seconds"].as_f64().expect("sys");
        assert!(cpu > 0.1, "task {t} used no CPU");
    }
}

#[test]
fn files_pass_every_hostile_name_as_one_argument() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("files"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out_dir.path());
    let tasks = s["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 6);
    for t in tasks {
        let seq = t["seq"].as_u64().expect("seq");
        let name = t["name"].as_str().expect("name");
        let out = std::fs::read_to_string(out_dir.path().join(format!("outputs/{seq}.out")))
            .expect("out");
        // wc -c prints "<bytes> <the one argument it got>".
        let (_, arg) = out
            .trim_end_matches('\n')
            .split_once(' ')
            .expect("wc output");
        assert_eq!(arg, name);
    }
    assert!(!example("files").join("pwned").exists());
}

#[test]
fn failures_reports_each_failure_and_completes() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("failures"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(out_dir.path());
    assert_eq!(s["totals"]["ok"], 2);
    assert_eq!(s["totals"]["failed"], 4);
    assert_eq!(s["totals"]["timed_out"], 1);
    let by_name = |name: &str| {
        s["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .expect("task by name")
    };
    assert_eq!(by_name("exit-3")["exit_code"], 3);
    assert_eq!(by_name("segfault")["signal"], 11);
    assert_eq!(by_name("too-slow")["status"], "timed_out");
    assert_eq!(by_name("missing-command")["status"], "failed");
    assert!(
        by_name("stderr-flood")["stderr_bytes"]
            .as_u64()
            .expect("bytes")
            > 500_000
    );
    assert_eq!(by_name("leaves-a-grandchild")["status"], "ok");
    let text = stdout(&o);
    assert!(
        text.contains("exit-3: exit 3 — config file not found"),
        "{text}"
    );
    assert!(text.contains("segfault: signal 11 (SIGSEGV)"), "{text}");
    assert!(text.contains("too-slow: timed out"), "{text}");
    assert!(text.contains("missing-command: not started"), "{text}");
    // The joblog has GNU parallel's values for each kind of failure.
    let rows = joblog(out_dir.path());
    let row = |seq: &str| rows.iter().find(|r| r[0] == seq).cloned().expect("row");
    assert_eq!((row("2")[6].as_str(), row("2")[7].as_str()), ("3", "0"));
    assert_eq!((row("3")[6].as_str(), row("3")[7].as_str()), ("0", "11"));
    assert_eq!((row("4")[6].as_str(), row("4")[7].as_str()), ("-1", "15"));
    assert_eq!((row("5")[6].as_str(), row("5")[7].as_str()), ("127", "0"));
    let err = std::fs::read_to_string(out_dir.path().join("outputs/5.err")).expect("err");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn python_pool_reports_the_four_items_that_raise() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("python-pool"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(out_dir.path());
    assert_eq!(s["totals"]["ok"], 196);
    assert_eq!(s["totals"]["failed"], 4);
    for seq in [47, 94, 141, 188] {
        let t = task(&s, seq);
        let error = t["error"].as_str().expect("error");
        assert!(
            error.contains("ValueError: item") && error.contains("Traceback"),
            "{error}"
        );
    }
    assert_eq!(task(&s, 1)["result"]["item"], 1);
    let workers = s["workers"].as_array().expect("workers").len() as u64;
    assert_eq!(
        workers,
        s["config"]["workers"].as_u64().expect("workers"),
        "no worker was lost"
    );
}

#[test]
fn oom_victim_finishes_with_one_killed_item() {
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = run_into(&example("oom-victim"), out_dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(out_dir.path());
    assert_eq!(s["totals"]["ok"], 19);
    let t = task(&s, 13);
    assert_eq!(t["status"], "failed");
    assert_eq!(t["signal"], 9);
    assert_eq!(task(&s, 12)["result"], 144);
    assert!(
        stdout(&o).contains("#13 13: signal 9 (SIGKILL)"),
        "{}",
        stdout(&o)
    );
}
