//! A panic on any of poolscope's threads is an internal error: exit 70 and a sentence that
//! carries the panic's message, never a hang or a success, and the records made so far
//! stay. Debug builds make a thread panic on request (`POOLSCOPE_PANIC`); no input can.
#![cfg(debug_assertions)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;

/// `poolscope run DIR --out OUT` with `POOLSCOPE_PANIC=place`, to its end (at most 30 s).
fn run_panicking(dir: &Path, out: &Path, place: &str) -> Output {
    let mut child = app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .env("POOLSCOPE_PANIC", place)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poolscope");
    let pid = child.id();
    let ended = wait_for(Duration::from_secs(30), || {
        child.try_wait().expect("wait").is_some()
    });
    if !ended {
        signal(pid, 9);
    }
    let o = child.wait_with_output().expect("output");
    assert!(ended, "a panic at {place} hung the run: {}", stderr(&o));
    o
}

/// The sentence an internal error ends with, checked: exit 70, the panic's message, from
/// a thread whose name starts with `thread`.
fn internal_error(o: &Output, thread: &str, place: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(70), "{err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    let (name, rest) = last
        .strip_prefix("error: internal error: the thread `")
        .and_then(|rest| rest.split_once('`'))
        .unwrap_or_default();
    assert!(name.starts_with(thread), "{err}");
    assert!(
        rest.starts_with(&format!(
            " panicked: injected at {place} by POOLSCOPE_PANIC; "
        )),
        "{err}"
    );
    last
}

fn three_tasks(cmd: &str) -> tempfile::TempDir {
    task_dir(&format!(
        "[pool]\nworkers = 1\n[each]\nrange = [1, 3]\ncmd = {cmd}\n"
    ))
}

#[test]
fn a_panic_of_the_run_thread_keeps_the_records_made_before_it() {
    let dir = three_tasks("[\"true\"]");
    let out = dir.path().join("run");
    let o = run_panicking(dir.path(), &out, "scheduler");
    let line = internal_error(&o, "poolscope-run", "scheduler");
    assert!(line.contains(&out.display().to_string()), "{line}");
    let rows = joblog(&out);
    assert_eq!(rows.len(), 1, "the first task's line is kept: {rows:?}");
    assert_eq!(rows[0][0], "1");
    assert!(!stdout(&o).contains("tasks"), "no summary: {}", stdout(&o));
}

#[test]
fn a_panic_of_a_slot_thread_ends_the_run() {
    let dir = three_tasks("[\"true\"]");
    let o = run_panicking(dir.path(), &dir.path().join("run"), "slot");
    internal_error(&o, "poolscope-slot-1", "slot");
}

#[test]
fn a_panic_of_a_worker_slot_thread_ends_the_run() {
    let dir =
        task_dir("[pool]\nworkers = 2\n[worker]\nbuiltin = \"noop\"\n[each]\nrange = [1, 50]\n");
    let o = run_panicking(dir.path(), &dir.path().join("run"), "worker");
    internal_error(&o, "poolscope-worker-", "worker");
}

#[test]
fn a_panic_of_the_monitor_cuts_a_long_task_short() {
    // The task would take a minute: only the monitor's panic ends the run sooner.
    let dir = task_dir("[[task]]\ncmd = [\"sleep\", \"60\"]\n");
    let o = run_panicking(dir.path(), &dir.path().join("run"), "monitor");
    internal_error(&o, "poolscope-monitor", "monitor");
}

#[test]
fn a_panic_while_folding_the_events_is_an_internal_error() {
    let dir = three_tasks("[\"true\"]");
    let o = run_panicking(dir.path(), &dir.path().join("run"), "fold");
    internal_error(&o, "main", "fold");
}
