//! What a run leaves on disk: joblog.tsv in GNU parallel's layout, trace.json in Chrome's
//! Trace Event format with one complete event per attempt, summary.json, outputs/.

mod common;

use common::*;

fn failing_run_with_retries() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = task_dir(
        "[pool]\nworkers = 2\nretries = 1\n\n[[task]]\nname = \"ok\"\nsh = \"echo hello\"\n\n[[task]]\nname = \"bad\"\nsh = \"echo oops >&2; exit 4\"\n\n[[task]]\nname = \"ok2\"\ncmd = [\"printf\", \"%s\", \"{#}\"]\n",
    );
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    (dir, out)
}

#[test]
fn joblog_has_gnu_parallels_columns_one_line_per_task() {
    let (_dir, out) = failing_run_with_retries();
    let rows = joblog(out.path());
    assert_eq!(
        rows.len(),
        3,
        "one line per task, for its final attempt: {rows:?}"
    );
    for r in &rows {
        assert_eq!(r.len(), 9, "{r:?}");
        r[0].parse::<usize>().expect("Seq");
        assert_eq!(r[1], ":");
        let start: f64 = r[2].parse().expect("Starttime");
        assert!(start > 1.6e9, "epoch seconds: {start}");
        assert_eq!(r[2].split('.').nth(1).map(str::len), Some(3));
        assert_eq!(r[3].len(), 10, "JobRuntime is %10.3f: {:?}", r[3]);
        r[3].trim().parse::<f64>().expect("JobRuntime");
        assert_eq!(r[4], "0");
        r[5].parse::<u64>().expect("Receive");
        r[6].parse::<i32>().expect("Exitval");
        r[7].parse::<i32>().expect("Signal");
    }
    let row = |seq: &str| rows.iter().find(|r| r[0] == seq).cloned().expect("row");
    assert_eq!(row("1")[5], "6", "Receive = bytes of stdout");
    assert_eq!(row("1")[8], "echo hello");
    assert_eq!(row("2")[6], "4");
    assert_eq!(row("3")[8], "printf %s 3");
}

#[test]
fn trace_has_one_complete_event_per_attempt() {
    let (_dir, out) = failing_run_with_retries();
    let text = std::fs::read_to_string(out.path().join("trace.json")).expect("trace");
    let trace: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents array");
    let complete: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == 1)
        .collect();
    // 3 tasks, one of them retried once.
    assert_eq!(complete.len(), 4);
    for e in &complete {
        assert!(
            e["ts"].as_f64().is_some() && e["dur"].as_f64().is_some(),
            "{e}"
        );
        assert!(
            e["tid"].as_u64().is_some_and(|t| (1..=2).contains(&t)),
            "{e}"
        );
        assert!(e["args"]["os_pid"].as_u64().is_some_and(|p| p > 0), "{e}");
        assert!(e["name"].is_string());
    }
    let bad: Vec<u64> = complete
        .iter()
        .filter(|e| e["args"]["task"] == 2)
        .map(|e| e["args"]["attempt"].as_u64().expect("attempt"))
        .collect();
    assert_eq!(bad, vec![1, 2]);
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "M" && e["name"] == "thread_name")
    );
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        assert!(["X", "M", "C"].contains(&ph), "{e}");
    }
}

#[test]
fn trace_has_the_per_core_timeline_where_sleeping_tasks_are_on_no_core() {
    let dir = task_dir(concat!(
        "[pool]\nworkers = 2\n",
        "[[task]]\nname = \"spin\"\nsh = \"i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done\"\n",
        "[[task]]\nname = \"nap\"\ncmd = [\"sleep\", \"1.5\"]\n",
    ));
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.path().join("trace.json")).expect("trace");
    let trace: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents array");
    let named = |name: &str, tid: u64, value: &str| {
        events.iter().any(|e| {
            e["ph"] == "M"
                && e["pid"] == 2
                && e["name"] == name
                && e["tid"] == tid
                && e["args"]["name"] == value
        })
    };
    assert!(named("process_name", 0, "CPU cores"), "{text}");
    let cores = poolscope::monitor::core_count();
    for core in 0..cores {
        assert!(named(
            "thread_name",
            core as u64 + 1,
            &format!("core {core}")
        ));
    }
    let summary = summary(out.path());
    let wall_ms = |seq: usize| {
        summary["tasks"][seq - 1]["wall_seconds"]
            .as_f64()
            .expect("wall")
            * 1000.0
    };
    let pid = |seq: usize| summary["tasks"][seq - 1]["pid"].as_u64().expect("pid");
    // Milliseconds on cores per task, from the `CPU cores` tracks.
    let mut on_core = [0.0f64; 2];
    for e in events.iter().filter(|e| e["ph"] == "X" && e["pid"] == 2) {
        let task = e["args"]["task"].as_u64().expect("task") as usize;
        let core = e["args"]["core"].as_u64().expect("core");
        assert_eq!(e["tid"].as_u64(), Some(core + 1), "{e}");
        assert_eq!(e["args"]["attempt"], 1, "{e}");
        assert_eq!(e["cat"], "ok", "{e}");
        if task == 2 {
            assert_eq!(e["args"]["os_pid"].as_u64(), Some(pid(2)), "{e}");
        }
        on_core[task - 1] += e["dur"].as_f64().expect("dur") / 1000.0;
    }
    // Sampled at 20 Hz: the spinning task is seen running most of its life; the sleeping
    // one at most around its start and end, one sampling period.
    assert!(
        on_core[0] > 0.5 * wall_ms(1),
        "spin: {on_core:?} of {} ms",
        wall_ms(1)
    );
    assert!(on_core[1] <= 50.0, "nap: {on_core:?} of {} ms", wall_ms(2));
}

#[test]
fn outputs_and_summary_hold_each_attempt() {
    let (_dir, out) = failing_run_with_retries();
    let o = out.path().join("outputs");
    assert_eq!(
        std::fs::read_to_string(o.join("1.out")).expect("1.out"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(o.join("2.err")).expect("2.err"),
        "oops\n"
    );
    assert_eq!(
        std::fs::read_to_string(o.join("2.attempt2.err")).expect("retry"),
        "oops\n"
    );
    let s = summary(out.path());
    assert_eq!(s["totals"]["ok"], 2);
    assert_eq!(s["totals"]["failed"], 1);
    let bad = task(&s, 2);
    assert_eq!(bad["attempts"], 2);
    assert_eq!(bad["exit_code"], 4);
    assert_eq!(bad["stderr_tail"], "oops");
    assert!(task(&s, 1)["max_rss_bytes"].as_u64().is_some_and(|r| r > 0));
}

#[test]
fn json_flag_prints_the_summary() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let out = tempfile::tempdir().expect("tmp");
    let o = run(&[
        "run",
        dir.path().to_str().expect("utf8"),
        "--out",
        out.path().to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(printed["totals"]["ok"], 1);
    assert_eq!(printed["tasks"][0]["command"], "true");
    let written = std::fs::read_to_string(out.path().join("summary.json")).expect("summary");
    assert_eq!(stdout(&o), format!("{written}\n"), "stdout is summary.json");
}

#[test]
fn a_run_leaves_no_temporary_files() {
    // One run ends before the files its end writes are made ahead, one after.
    for seconds in ["0", "0.3"] {
        let dir = task_dir(&format!("[[task]]\ncmd = [\"sleep\", \"{seconds}\"]\n"));
        let out = tempfile::tempdir().expect("tmp");
        let o = run_into(dir.path(), out.path(), &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut names: Vec<String> = std::fs::read_dir(out.path())
            .expect("run directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["joblog.tsv", "outputs", "summary.json", "trace.json"],
            "after a task of {seconds} s"
        );
    }
}

#[test]
fn default_run_directory_is_under_the_task_directory() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let o = run(&["run", dir.path().to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0));
    let runs: Vec<_> = std::fs::read_dir(dir.path().join(".poolscope/runs"))
        .expect("runs folder")
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].path().join("joblog.tsv").is_file());
    assert!(stdout(&o).contains(runs[0].path().to_str().expect("utf8")));
}

#[test]
fn a_task_is_recorded_while_the_next_one_on_its_slot_runs() {
    // One slot: the second task waits behind the first, then looks for the first one's
    // joblog line (for 30 s at most, writing nothing). The slot holds the first one's
    // record back while the second starts up, but not until the second ends.
    let dir = task_dir(
        r#"[pool]
workers = 1

[[task]]
name = "first"
cmd = ["sleep", "0.2"]

[[task]]
name = "waits"
sh = "for i in $(seq 3000); do grep -qs '^1\t' \"$POOLSCOPE_RUN/joblog.tsv\" && exit 0; sleep 0.01; done; exit 1"
"#,
    );
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out.path());
    assert_eq!(task(&s, 2)["status"], "ok");
    let rows = joblog(out.path());
    assert_eq!(rows.len(), 2, "{rows:?}");
}
