//! The desktop app, driven headless with egui_kittest: widgets are found by their label,
//! clicked, and what the panels show is asserted. Runs use real processes.

mod common;

use std::time::Duration;

use common::*;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use poolscope::gui::{PoolscopeApp, Settings};

fn harness(app: PoolscopeApp) -> Harness<'static, PoolscopeApp> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut PoolscopeApp| app.show(ui), app)
}

/// Draw frames until the run has ended (real processes: this takes real time).
fn run_to_end(h: &mut Harness<'static, PoolscopeApp>) {
    let ended = wait_for(Duration::from_secs(60), || {
        h.step();
        !h.state().is_running()
    });
    assert!(ended, "the run did not end");
    h.run();
}

/// The app on a new task directory holding `manifest` and `files` (name, text), drawn
/// once; the directory lives as long as the returned guard.
fn app_on(
    manifest: &str,
    files: &[(&str, &str)],
) -> (tempfile::TempDir, Harness<'static, PoolscopeApp>) {
    let dir = task_dir(manifest);
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a task file");
    }
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    (dir, h)
}

/// Press Run and draw frames until the run has ended.
fn run_once(h: &mut Harness<'static, PoolscopeApp>) {
    h.get_by_label("▶ Run").click();
    h.run_steps(2);
    run_to_end(h);
}

const MIXED: &str = r#"
[pool]
workers = 3

[[task]]
name = "fine"
sh = "echo all good"

[[task]]
name = "exit-three"
sh = "echo 'config file not found' >&2; exit 3"

[[task]]
name = "crash"
sh = "kill -SEGV $$"

[[task]]
name = "also-fine"
cmd = ["sleep", "0.2"]
"#;

#[test]
fn load_configure_run_and_read_the_panels() {
    let dir = task_dir(MIXED);
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    // The load report lists the tasks with their expanded commands.
    h.get_by_label("$ echo 'config file not found' >&2; exit 3");
    // The form is prefilled from the manifest; change the worker count.
    assert_eq!(h.state().form().config.workers, 3);
    h.get_by_label("Workers").set_value_accesskit(2.0);
    h.run();
    assert_eq!(h.state().form().config.workers, 2);
    h.get_by_label("▶ Run").click();
    // A live run keeps repainting: step frames rather than wait for the ui to settle.
    h.run_steps(2);
    assert!(h.state().is_running());
    run_to_end(&mut h);

    let state = h.state().current_state().expect("a run").clone();
    assert_eq!(
        state.slots.len(),
        2,
        "the run used the worker count set in the form"
    );
    // Workers panel: one row per slot, with the PID each slot ran last.
    for slot in &state.slots {
        let pid = slot.last_pid.expect("each slot ran a task");
        h.get_by_label(&pid.to_string());
    }
    // Status line.
    h.get_by_label("4/4 ended:");
    h.get_by_label("2 ok");
    h.get_by_label("2 failed");
    // Errors panel: each failure with its exit code or signal and its stderr.
    h.get_by_label("Errors (2)").click();
    h.run();
    h.get_by_label("exit 3");
    h.get_by_label("config file not found");
    h.get_by_label("signal 11 (SIGSEGV)");
    // Its whole output is one click away.
    h.get_all_by_label("Open output")
        .next()
        .expect("a button")
        .click();
    h.run();
    h.get_by_label_contains("Output of #");
}

#[test]
fn after_kill_the_status_line_counts_cancelled_and_skipped_tasks_apart() {
    let (_dir, mut h) = app_on(
        "[pool]\nworkers = 2\n[each]\nrange = [1, 6]\ncmd = [\"sleep\", \"30\"]\n",
        &[],
    );
    h.get_by_label("▶ Run").click();
    let started = wait_for(Duration::from_secs(30), || {
        h.step();
        h.state()
            .current_state()
            .is_some_and(|s| s.counts().running == 2)
    });
    assert!(started, "two tasks did not start");
    h.get_by_label("Kill").click();
    run_to_end(&mut h);
    h.get_by_label("2/6 ended:");
    h.get_by_label("0 ok");
    h.get_by_label("0 failed");
    h.get_by_label("2 cancelled");
    h.get_by_label("4 skipped");
    h.get_by_label("stopped");
    assert!(
        h.query_by_label_contains("speed-up").is_none(),
        "a stopped run shows no speed-up"
    );
    // Cancelled attempts are not errors.
    h.get_by_label("Errors (0)");
}

#[test]
fn a_run_without_a_success_shows_no_speed_up_and_says_why() {
    let (_dir, mut h) = app_on(
        "[pool]\nworkers = 2\n[each]\nrange = [1, 4]\ncmd = [\"false\"]\n",
        &[],
    );
    run_once(&mut h);
    h.get_by_label("4/4 ended:");
    h.get_by_label("4 failed");
    let withheld = h.get_by_label("speed-up –");
    withheld.hover();
    h.run();
    h.get_by_label("No speed-up: no task succeeded.");
}

#[test]
fn the_load_report_has_the_main_area_until_the_first_run_and_the_tabs_stay_put() {
    let (_dir, mut h) = app_on(
        "[pool]\nworkers = 2\n[each]\nrange = [1, 3]\ncmd = [\"echo\", \"{}\"]\n",
        &[],
    );
    let pool = h.get_by_label("Pool").rect();
    let tasks = h.get_by_label("3 tasks").rect();
    assert!(
        tasks.left() > pool.right(),
        "before the first run the load report is in the main area: {tasks:?} vs {pool:?}"
    );
    // The Benchmark tab takes the main area: the load report stays beside the form.
    h.get_by_label("Benchmark").click();
    h.run();
    assert!(h.get_by_label("3 tasks").rect().left() < pool.right());
    h.get_by_label("Timeline").click();
    h.run();
    let before = h.get_by_label("Timeline").rect();
    run_once(&mut h);
    let after = h.get_by_label("Timeline").rect();
    assert!(
        (before.top() - after.top()).abs() < 0.5 && (before.left() - after.left()).abs() < 2.0,
        "the tab bar moved when the run started: {before:?} to {after:?}"
    );
    let tasks = h.get_by_label("3 tasks").rect();
    assert!(
        tasks.left() < pool.right(),
        "after a run the load report is beside the pool form"
    );
    // The timeline says what its colours mean and how to zoom.
    for name in ["running", "ok", "failed", "timed out", "cancelled"] {
        h.get_by_label(name);
    }
    h.get_by_label_contains("Ctrl+wheel zooms");
    // The pool form's field and the workers table's heading.
    assert_eq!(h.query_all_by_label("Workers").count(), 2);
    h.get_by_label("Benchmark").click();
    h.run();
    assert_eq!(
        h.query_all_by_label("Workers").count(),
        1,
        "the benchmark tab gets the whole area, without the workers table"
    );
}

#[test]
fn a_manifest_error_is_shown_in_place_with_its_line() {
    let (_dir, mut h) = app_on("[pool]\nworkers = 2\nwokers = 3\n", &[]);
    h.get_by_label("This directory cannot run:");
    let error = h.get_by_label_contains("poolscope.toml:3:1");
    assert!(format!("{error:?}").contains("wokers"));
    // Nothing can run.
    h.get_by_label("▶ Run").click();
    h.run();
    assert!(!h.state().is_running());
}

#[test]
fn a_worker_module_that_cannot_load_is_shown_with_its_traceback() {
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 3]\n");
    std::fs::write(
        dir.path().join("work.py"),
        "import no_such_module\ndef f(x):\n    return x\n",
    )
    .expect("write work.py");
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    h.get_by_label("This directory cannot run:");
    let sentence = h.get_by_label_contains(
        "poolscope.toml:4:10: [worker] `python = \"work.py:f\"` cannot be loaded",
    );
    let sentence = format!("{sentence:?}");
    assert!(
        !sentence.contains("Traceback"),
        "the sentence stands alone: {sentence}"
    );
    // The traceback in a block of its own, beneath it.
    let traceback = h.get_by_label_contains("Traceback (most recent call last):");
    let text = format!("{traceback:?}");
    assert!(!text.contains("cannot be loaded"), "{text}");
    assert!(text.contains("line 1, in <module>"), "{text}");
    assert!(
        text.contains("ModuleNotFoundError: No module named 'no_such_module'"),
        "{text}"
    );
    h.get_by_label("▶ Run").click();
    h.run();
    assert!(!h.state().is_running(), "nothing can run");
}

#[test]
fn a_misspelt_worker_function_is_shown_in_the_load_report_and_nothing_runs() {
    let (_dir, mut h) = app_on(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:proc\"\n[each]\nrange = [1, 3]\n",
        &[("work.py", "def process(x):\n    return x\n")],
    );
    h.get_by_label("This directory cannot run:");
    h.get_by_label_contains("names a function work.py does not have; did you mean `process`?");
    h.get_by_label("▶ Run").click();
    h.run();
    assert!(!h.state().is_running(), "nothing can run");
}

#[test]
fn the_records_folder_is_not_in_the_apps_load_report() {
    let dir = task_dir("[each]\ninputs = \"*\"\ncmd = [\"cat\", \"{}\"]\n");
    std::fs::write(dir.path().join("a.txt"), "a\n").expect("write a.txt");
    // The records of an earlier run, where the task directory keeps them.
    std::fs::create_dir_all(dir.path().join(".poolscope/runs")).expect("mkdir .poolscope");
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    assert!(
        h.query_all_by_label_contains("a.txt").next().is_some(),
        "the input file is in the load report"
    );
    assert!(
        h.query_all_by_label_contains(".poolscope").next().is_none(),
        "the records folder is listed in the load report"
    );
}

#[test]
fn per_core_lanes_show_one_lane_per_core() {
    let (_dir, mut h) = app_on(
        "[pool]\nworkers = 2\n\n[each]\nrange = [1, 4]\nsh = \"i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done\"\n",
        &[],
    );
    h.key_press(egui::Key::F5);
    h.run_steps(2);
    assert!(h.state().is_running(), "F5 starts a run");
    run_to_end(&mut h);
    h.get_by_label_contains("2 lanes, one per worker slot");
    h.get_by_label("CPU cores").click();
    h.run();
    let cores = poolscope::monitor::core_count();
    h.get_by_label_contains(&format!("{cores} lanes, one per CPU core"));
    assert!(h.state().settings.per_core_lanes);
    let state = h.state().current_state().expect("a run");
    let busy_cores = state
        .core_spans
        .iter()
        .filter(|spans| !spans.is_empty())
        .count();
    assert!(busy_cores >= 1, "the placement samples put tasks on cores");
    // The Cores tab: per core, and the machine with the pool's share apart.
    h.get_by_label("Cores").click();
    h.run();
    h.get_by_label_contains("CPU utilization per core");
    h.get_by_label_contains("the part of it the pool's processes used");
}

#[test]
fn runs_repeat_and_stay_selectable() {
    let (_dir, mut h) = app_on("[[task]]\ncmd = [\"true\"]\n", &[]);
    for _ in 0..2 {
        h.get_by_label("▶ Run").click();
        h.run_steps(2);
        run_to_end(&mut h);
    }
    let second = h
        .state()
        .current_state()
        .expect("run 2")
        .info
        .clone()
        .expect("info")
        .run_dir
        .clone();
    // The run list offers both; pick the first.
    h.get_by_label("Run:").click();
    h.run();
    h.get_by_label("#2");
    h.get_by_label("#1").click();
    h.run();
    let first = h
        .state()
        .current_state()
        .expect("run 1")
        .info
        .clone()
        .expect("info");
    assert!(first.run_dir.exists());
    assert_ne!(first.run_dir, second, "the first run is on display");
    assert_eq!(h.state().settings.recent.len(), 1);
}

#[test]
fn closing_the_app_kills_the_run_and_keeps_its_records() {
    let pids = tempfile::tempdir().expect("tmp");
    let dir = task_dir(&format!(
        "[pool]\nworkers = 2\n\n[each]\nrange = [1, 3]\nsh = \"sleep 300 & echo $! > {0}/bg-{{#}}; echo $$ > {0}/main-{{#}}; wait\"\n",
        pids.path().display()
    ));
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    h.get_by_label("▶ Run").click();
    let started = wait_for(Duration::from_secs(20), || {
        h.step();
        std::fs::read_dir(pids.path()).map_or(0, |d| d.count()) == 4
    });
    assert!(started, "two tasks did not start");
    let list: Vec<i32> = std::fs::read_dir(pids.path())
        .expect("pids")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect();
    assert_eq!(list.len(), 4);
    // What the window's close does.
    h.state_mut().shutdown();
    // SIGKILL is delivered at once but a process takes a moment to die: allow 1 s.
    let gone = wait_for(Duration::from_secs(1), || list.iter().all(|&p| !alive(p)));
    let left: Vec<i32> = list.iter().copied().filter(|&p| alive(p)).collect();
    assert!(gone, "still running 1 s after the app closed: {left:?}");
    let run_dir = h
        .state()
        .current_state()
        .expect("a run")
        .info
        .clone()
        .expect("info")
        .run_dir
        .clone();
    let s = summary(&run_dir);
    assert_eq!(s["interrupted"], true);
    assert_eq!(
        joblog(&run_dir).len(),
        2,
        "both running tasks are recorded, as cancelled"
    );
}

#[test]
fn the_benchmark_panel_runs_each_worker_count_and_shows_the_table() {
    let (_dir, mut h) = app_on("[each]\nrange = [1, 4]\ncmd = [\"sleep\", \"0.1\"]\n", &[]);
    h.get_by_label("Benchmark").click();
    h.run();
    h.get_by_label("Worker counts")
        .set_text_value_accesskit("1,4");
    h.get_by_label("Runs").set_value_accesskit(2.0);
    h.run();
    assert_eq!(h.state().bench.workers, "1,4");
    assert_eq!(h.state().bench.runs, 2);
    h.get_by_label("Run benchmark").click();
    h.run_steps(2);
    assert!(h.state().is_running());
    // Progress while it runs.
    let progress = wait_for(Duration::from_secs(30), || {
        h.step();
        h.query_by_label_contains("of 4 runs)").is_some()
    });
    assert!(progress, "no progress shown while the benchmark runs");
    run_to_end(&mut h);
    let report = h.state().bench.report.clone().expect("a report");
    let workers: Vec<usize> = report.settings.iter().map(|s| s.workers).collect();
    assert_eq!(workers, [1, 4]);
    assert_eq!(report.settings[1].times.len(), 2);
    // The table and the serial note are on screen.
    h.get_by_label("Karp–Flatt");
    h.get_by_label_contains("Serial: measured");
    let median = format!("{:.3}", report.settings[1].spread.median);
    assert!(
        h.query_all_by_label(&median).next().is_some(),
        "the table shows the median"
    );
    // Every run of the benchmark is a run of its own, to look at in the timeline.
    h.get_by_label("Run:").click();
    h.run();
    h.get_by_label("#4 4 workers, run 2/2");
}

#[test]
fn a_new_folder_starts_the_benchmark_tab_afresh_with_its_own_worker_counts() {
    let (_first, mut h) = app_on("[each]\nrange = [1, 2]\ncmd = [\"true\"]\n", &[]);
    let cores = poolscope::monitor::core_count();
    // Worker counts offered: 1, the cores and the manifest's workers, each once, in order.
    let offered = |text: &str| -> Vec<usize> {
        text.split(',')
            .map(|n| n.parse().expect("a number"))
            .collect()
    };
    let expected = |manifest: Option<usize>| {
        let mut counts = std::collections::BTreeSet::from([1, cores]);
        counts.extend(manifest);
        if counts.len() == 1 {
            // Still two counts to compare.
            counts.insert(2);
        }
        counts.into_iter().collect::<Vec<usize>>()
    };
    assert_eq!(offered(&h.state().bench.workers), expected(None));
    h.get_by_label("Benchmark").click();
    h.run();
    h.get_by_label("Worker counts")
        .set_text_value_accesskit("1");
    h.get_by_label("Runs").set_value_accesskit(1.0);
    h.run();
    h.get_by_label("Run benchmark").click();
    h.run_steps(2);
    run_to_end(&mut h);
    assert!(
        h.state().bench.report.is_some(),
        "the first folder's results"
    );
    let second = task_dir("[pool]\nworkers = 5\n[each]\nrange = [1, 2]\ncmd = [\"true\"]\n");
    h.state_mut().open(second.path());
    h.run();
    assert!(
        h.state().bench.report.is_none(),
        "no results of another folder"
    );
    assert_eq!(offered(&h.state().bench.workers), expected(Some(5)));
    assert!(
        h.query_by_label_contains("Karp–Flatt").is_none(),
        "the old table is gone"
    );
}

#[test]
fn a_new_run_follows_the_live_edge_again_after_a_zoom() {
    let (_dir, mut h) = app_on("[[task]]\ncmd = [\"true\"]\n", &[]);
    run_once(&mut h);
    assert!(h.state().follows_live_edge());
    h.get_by_label("Follow live edge").click();
    h.run();
    assert!(
        !h.state().follows_live_edge(),
        "switched off, as a zoom does"
    );
    h.get_by_label("▶ Run").click();
    h.run_steps(2);
    assert!(h.state().follows_live_edge(), "the new run is followed");
    run_to_end(&mut h);
}

#[test]
fn a_persistent_worker_between_items_is_ready_with_its_memory_shown() {
    // Two workers, a long item and a short one: once the short one is done, its worker
    // waits, loaded, until the run ends.
    let dir = task_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\n[each]\ninputs = [\"3\", \"0.1\"]\n",
    );
    std::fs::write(
        dir.path().join("work.py"),
        "import time\ndef f(x):\n    time.sleep(float(x))\n    return x\n",
    )
    .expect("write work.py");
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    h.get_by_label("▶ Run").click();
    let idle_slot = |h: &Harness<'static, PoolscopeApp>| {
        let state = h.state().current_state()?;
        let idle = state.slots.iter().position(|s| s.current.is_none())?;
        let ready = state.live_worker(idle + 1)?.ready.is_some();
        (ready && state.slots[idle].rss > 0).then_some(idle)
    };
    let seen = wait_for(Duration::from_secs(20), || {
        h.step();
        idle_slot(&h).is_some()
    });
    assert!(seen, "the waiting worker's memory was never shown");
    h.run_steps(2);
    h.get_by_label("ready");
    run_to_end(&mut h);
}

#[test]
fn persistent_workers_show_stable_pids_and_recycles() {
    let dir = task_dir(
        "[pool]\nworkers = 1\nmax_tasks_per_worker = 3\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 7]\n",
    );
    std::fs::write(
        dir.path().join("work.py"),
        "import os\ndef f(x):\n    return os.getpid()\n",
    )
    .expect("write work.py");
    let app = PoolscopeApp::new(Settings::default(), Some(dir.path()));
    let mut h = harness(app);
    h.run();
    run_once(&mut h);
    let state = h.state().current_state().expect("a run").clone();
    let pids: Vec<u32> = state.slot_workers(1).map(|w| w.pid).collect();
    assert_eq!(pids.len(), 3, "7 items, 3 per worker: {pids:?}");
    // Every item is on the timeline, each with the PID of the worker that ran it.
    assert_eq!(state.attempts.len(), 7);
    for (i, a) in state.attempts.iter().enumerate() {
        assert_eq!(
            a.pid,
            pids[i / 3],
            "item {} ran on worker {}",
            i + 1,
            i / 3 + 1
        );
    }
    // The slot's row: the latest worker's PID, then the earlier ones, newest first.
    h.get_by_label(&pids[2].to_string());
    h.get_by_label(&format!("{}, {}", pids[1], pids[0]));
}
