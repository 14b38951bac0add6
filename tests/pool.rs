//! Pool semantics with real processes: slots, timeouts, retries, halting, order, pinning,
//! and the environment every task gets.

mod common;

use std::time::Duration;

use common::*;

fn run_dir(
    manifest: &str,
    extra: &[&str],
) -> (std::process::Output, tempfile::TempDir, serde_json::Value) {
    let dir = task_dir(manifest);
    let out = tempfile::tempdir().expect("tmp");
    let mut args = vec![
        "run",
        dir.path().to_str().expect("utf8"),
        "--out",
        out.path().to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let s = summary(out.path());
    (o, out, s)
}

fn spans(s: &serde_json::Value) -> Vec<(f64, f64, u64)> {
    s["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["start_seconds"].is_number())
        .map(|t| {
            let start = t["start_seconds"].as_f64().expect("start");
            (
                start,
                start + t["wall_seconds"].as_f64().expect("wall"),
                t["slot"].as_u64().expect("slot"),
            )
        })
        .collect()
}

#[test]
fn never_more_tasks_at_once_than_workers_and_slots_do_not_overlap() {
    let (o, _out, s) = run_dir(
        "[each]\nrange = [1, 9]\ncmd = [\"sleep\", \"0.2\"]\n",
        &["--workers", "3"],
    );
    assert_eq!(o.status.code(), Some(0));
    let spans = spans(&s);
    for &(start, _, _) in &spans {
        let at_once = spans
            .iter()
            .filter(|&&(a, b, _)| a <= start && start < b)
            .count();
        assert!(at_once <= 3, "{at_once} tasks at once at {start}");
    }
    for slot in 1..=3 {
        let mut mine: Vec<(f64, f64)> = spans
            .iter()
            .filter(|x| x.2 == slot)
            .map(|x| (x.0, x.1))
            .collect();
        mine.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            mine.windows(2).all(|w| w[0].1 <= w[1].0 + 1e-3),
            "slot {slot} overlaps: {mine:?}"
        );
    }
}

#[test]
fn timeout_kills_the_whole_group_term_then_kill() {
    // The shell ignores TERM; its child sleep does not: KILL comes 2 s after TERM.
    let (o, out, s) = run_dir(
        "[[task]]\nsh = \"trap '' TERM; sleep 30; sleep 30\"\ntimeout = \"300ms\"\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let t = task(&s, 1);
    assert_eq!(t["status"], "timed_out");
    let wall = t["wall_seconds"].as_f64().expect("wall");
    assert!(
        wall >= 2.3,
        "KILL follows TERM after 2 s; ended after {wall} s"
    );
    let row = &joblog(out.path())[0];
    assert_eq!((row[6].as_str(), row[7].as_str()), ("-1", "15"));
}

#[test]
fn retries_rerun_a_failed_task() {
    let marks = tempfile::tempdir().expect("tmp");
    // Fails on the first attempt, succeeds on the second.
    let (o, _out, s) = run_dir(
        &format!(
            "[pool]\nretries = 2\n\n[[task]]\nsh = \"if [ -e {0}/x ]; then exit 0; fi; touch {0}/x; exit 1\"\n",
            marks.path().display()
        ),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(task(&s, 1)["attempts"], 2);
    assert_eq!(task(&s, 1)["status"], "ok");
}

#[test]
fn halt_soon_starts_nothing_new_after_a_failure() {
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 1\nhalt = \"soon\"\n\n[[task]]\ncmd = [\"true\"]\n\n[[task]]\ncmd = [\"false\"]\n\n[[task]]\ncmd = [\"true\"]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(task(&s, 1)["status"], "ok");
    assert_eq!(task(&s, 2)["status"], "failed");
    assert_eq!(task(&s, 3)["status"], "skipped: halted");
}

#[test]
fn halt_now_kills_running_tasks() {
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 2\nhalt = \"now\"\n\n[[task]]\ncmd = [\"sleep\", \"30\"]\n\n[[task]]\nsh = \"sleep 0.2; exit 2\"\n\n[[task]]\ncmd = [\"true\"]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(task(&s, 1)["outcome"], "cancelled");
    assert!(task(&s, 1)["wall_seconds"].as_f64().expect("wall") < 10.0);
    assert_eq!(task(&s, 2)["exit_code"], 2);
    assert_eq!(task(&s, 3)["status"], "skipped: halted");
}

#[test]
fn flags_override_the_manifest() {
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 4\nretries = 3\n\n[[task]]\ncmd = [\"true\"]\n",
        &["-j", "1", "--retries", "0"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(s["config"]["workers"], 1);
    assert_eq!(s["config"]["retries"], 0);
}

#[test]
fn a_pool_has_no_more_slots_than_tasks_to_run() {
    let (o, _out, s) = run_dir(
        "[each]\nrange = [1, 3]\ncmd = [\"true\"]\n",
        &["-j", "4096"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s["config"]["workers"], 3);
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 4096\n[worker]\nbuiltin = \"noop\"\n[each]\nrange = [1, 2]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s["config"]["workers"], 2);
    assert_eq!(s["workers"].as_array().expect("workers").len(), 2);
}

#[test]
fn every_task_gets_its_number_slot_and_run_directory() {
    let (o, out, _s) = run_dir(
        "[pool]\nworkers = 2\n\n[each]\nrange = [1, 2]\nsh = \"echo $POOLSCOPE_TASK $POOLSCOPE_SLOT $POOLSCOPE_RUN {#} {%}\"\nenv = { EXTRA = \"x\" }\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    for seq in 1..=2 {
        let text =
            std::fs::read_to_string(out.path().join(format!("outputs/{seq}.out"))).expect("out");
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f[0], seq.to_string());
        assert_eq!(f[0], f[3]);
        assert_eq!(f[1], f[4], "POOLSCOPE_SLOT is {{%}}");
        assert_eq!(std::path::Path::new(f[2]), out.path());
    }
}

#[test]
fn pinned_slots_stay_on_their_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 2\npin = true\n\n[each]\nrange = [1, 4]\ncmd = [\"sh\", \"-c\", \"i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\"]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for t in s["tasks"].as_array().expect("tasks") {
        let slot = t["slot"].as_u64().expect("slot") as usize;
        let seen: Vec<usize> = t["cores"]
            .as_array()
            .expect("cores")
            .iter()
            .map(|c| c.as_u64().expect("core") as usize)
            .collect();
        assert!(!seen.is_empty(), "no placement sample for slot {slot}");
        assert!(
            seen.iter().all(|&c| c == (slot - 1) % cores),
            "slot {slot} ran on {seen:?}"
        );
    }
}

#[test]
fn every_task_has_its_cores_short_or_long_before_or_after_the_monitor_starts() {
    // One slot: a short task before the monitor starts, a long one it samples, and short
    // ones it cannot have seen.
    let (o, _out, s) = run_dir(
        "[pool]\nworkers = 1\n\n[[task]]\ncmd = [\"true\"]\n\n[[task]]\ncmd = [\"sleep\", \"0.4\"]\n\n[[task]]\ncmd = [\"true\"]\n\n[[task]]\ncmd = [\"sleep\", \"0.01\"]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cores = poolscope::monitor::core_count() as u64;
    for t in s["tasks"].as_array().expect("tasks") {
        let seen = t["cores"].as_array().expect("cores");
        assert!(!seen.is_empty(), "task {} has no core", t["seq"]);
        assert!(
            seen.iter().all(|c| c.as_u64().is_some_and(|c| c < cores)),
            "{seen:?}"
        );
    }
}

#[test]
fn longest_first_uses_the_previous_runs_durations() {
    let dir = task_dir(
        "[pool]\nworkers = 1\n\n[[task]]\nname = \"short\"\ncmd = [\"sleep\", \"0.05\"]\n\n[[task]]\nname = \"long\"\ncmd = [\"sleep\", \"0.4\"]\n\n[[task]]\nname = \"middle\"\ncmd = [\"sleep\", \"0.2\"]\n",
    );
    let d = dir.path().to_str().expect("utf8");
    assert_eq!(run(&["run", d]).status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(
        run(&["run", d, "--order", "longest-first"]).status.code(),
        Some(0)
    );
    let latest = std::fs::read_dir(dir.path().join(".poolscope/runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .max()
        .expect("a run");
    let s = summary(&latest);
    let mut by_start: Vec<(f64, String)> = s["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["start_seconds"].as_f64().expect("start"),
                t["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    by_start.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<&str> = by_start.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(order, ["long", "middle", "short"]);
}

#[test]
fn sh_templates_cannot_be_injected() {
    let marks = tempfile::tempdir().expect("tmp");
    let evil = format!(
        "x; touch {0}/pwned; $(touch {0}/pwned2) `touch {0}/pwned3` 'q",
        marks.path().display()
    );
    let manifest = format!(
        "[each]\ninputs = [{}]\nsh = \"printf '%s' {{}}\"\n",
        toml_string(&evil)
    );
    let (o, out, _s) = run_dir(&manifest, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = std::fs::read_to_string(out.path().join("outputs/1.out")).expect("out");
    assert_eq!(printed, evil);
    assert_eq!(
        std::fs::read_dir(marks.path()).expect("marks").count(),
        0,
        "the input ran as code"
    );
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
