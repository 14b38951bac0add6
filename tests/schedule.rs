//! A task is bound to a worker slot only when that slot is free (DESIGN §2): with uneven
//! durations no short task waits behind a long one while another slot idles, so the run
//! takes as long as list scheduling in listed order.
//!
//! The bound is relative: the ideal schedule is computed from the durations the run
//! itself measured, so a sleep that runs long on a busy machine moves both sides alike.

mod common;

use std::fmt::Write as _;
use std::fs;

use common::*;
use serde_json::Value;

/// Seconds to sleep, in the order listed: two long tasks with a short one between them,
/// then many short ones.
const UNEVEN: [&str; 12] = [
    "3", "0.1", "3", "0.3", "0.3", "0.3", "0.3", "0.3", "0.3", "0.3", "0.3", "0.3",
];

const WORKERS: usize = 2;

/// The makespan may exceed the ideal schedule by this fraction (hand-over between tasks).
const SLACK: f64 = 0.03;

/// One finished task of a run, times in seconds from the run's start.
#[derive(Debug, Clone, Copy)]
struct Ran {
    seq: usize,
    slot: usize,
    start: f64,
    end: f64,
}

/// The tasks of `summary`, in listed order; each must have succeeded.
fn tasks_of(summary: &Value) -> Vec<Ran> {
    let tasks = summary["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), UNEVEN.len(), "{summary}");
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            assert_eq!(t["seq"], i + 1, "{t}");
            assert_eq!(t["status"], "ok", "{t}");
            let start = t["start_seconds"].as_f64().expect("start_seconds");
            let wall = t["wall_seconds"].as_f64().expect("wall_seconds");
            Ran {
                seq: i + 1,
                slot: t["slot"].as_u64().expect("slot") as usize,
                start,
                end: start + wall,
            }
        })
        .collect()
}

/// List scheduling in listed order: each task in turn starts on the slot that is free
/// first (the lowest of equals), as soon as it is free; slot `i` is free from `free[i]`.
/// Returns when the last task ends.
fn greedy_makespan(durations: &[f64], mut free: Vec<f64>) -> f64 {
    for &d in durations {
        let first = (0..free.len())
            .min_by(|&a, &b| free[a].total_cmp(&free[b]))
            .expect("at least one slot");
        free[first] += d;
    }
    free.into_iter().fold(0.0, f64::max)
}

/// The run as a table, for failure messages.
fn table(ran: &[Ran]) -> String {
    let mut s = String::from("task slot  start    end\n");
    for r in ran {
        let _ = writeln!(s, "{:4} {:4} {:6.3} {:6.3}", r.seq, r.slot, r.start, r.end);
    }
    s
}

/// Check the two properties of a run of `UNEVEN` on `WORKERS` slots, and say which fail:
/// (a) the tasks started in listed order;
/// (b) from the first start to the last end took at most `SLACK` more than the ideal
///     schedule of the measured durations, where slot `i` is free from `free_from[i]`
///     (seconds from the run's start; a persistent worker is free once it is ready).
fn check_schedule(ran: &[Ran], free_from: &[f64]) {
    let mut broken = Vec::new();
    for r in ran {
        if !(1..=WORKERS).contains(&r.slot) {
            broken.push(format!("task {} ran on slot {}", r.seq, r.slot));
        }
    }

    // (a) The first WORKERS tasks go to idle slots at the same moment, each slot starting
    // its own, so they may start in either order among themselves; every later task is
    // bound to a slot when it frees, one at a time, and this list never frees two slots
    // at nearly the same moment.
    let first_wave = ran[..WORKERS].iter().map(|r| r.start).fold(0.0, f64::max);
    if first_wave > ran[WORKERS].start {
        broken.push(format!(
            "task {} started before one of the first {WORKERS}",
            WORKERS + 1
        ));
    }
    for w in ran[WORKERS..].windows(2) {
        if w[0].start > w[1].start {
            broken.push(format!(
                "task {} started before task {}: not in listed order",
                w[1].seq, w[0].seq
            ));
        }
    }

    // (b) Measured from the first task's start.
    let origin = ran.iter().map(|r| r.start).fold(f64::INFINITY, f64::min);
    let makespan = ran.iter().map(|r| r.end).fold(0.0, f64::max) - origin;
    let durations: Vec<f64> = ran.iter().map(|r| r.end - r.start).collect();
    let free: Vec<f64> = free_from.iter().map(|&t| (t - origin).max(0.0)).collect();
    let ideal = greedy_makespan(&durations, free);
    eprintln!("first start to last end {makespan:.3} s; ideal schedule {ideal:.3} s");
    if makespan > ideal * (1.0 + SLACK) {
        broken.push(format!(
            "the run took {makespan:.3} s from its first start to its last end; list \
             scheduling of the measured durations in listed order takes {ideal:.3} s (at \
             most {:.0} % more allowed)",
            SLACK * 100.0
        ));
    }
    assert!(broken.is_empty(), "{}\n{}", broken.join("\n"), table(ran));
}

fn inputs() -> String {
    let quoted: Vec<String> = UNEVEN.iter().map(|s| format!("{s:?}")).collect();
    quoted.join(", ")
}

#[test]
fn uneven_commands_start_in_order_and_take_the_ideal_schedule() {
    let dir = task_dir(&format!(
        "[pool]\nworkers = {WORKERS}\n\n[each]\ninputs = [{}]\ncmd = [\"sleep\", \"{{}}\"]\n",
        inputs()
    ));
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ran = tasks_of(&summary(out.path()));
    check_schedule(&ran, &[0.0; WORKERS]);
}

#[test]
fn uneven_python_items_start_in_order_and_take_the_ideal_schedule() {
    let dir = task_dir(&format!(
        "[pool]\nworkers = {WORKERS}\n\n[worker]\npython = \"work.py:f\"\n\n\
         [each]\ninputs = [{}]\n",
        inputs()
    ));
    fs::write(
        dir.path().join("work.py"),
        "import time\n\n\ndef f(x):\n    time.sleep(float(x))\n",
    )
    .expect("write work.py");
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out.path());
    let ran = tasks_of(&s);
    // A slot is free once its first worker said it was ready: worker start-up is not
    // part of the schedule.
    let workers = s["workers"].as_array().expect("workers in summary.json");
    let free_from: Vec<f64> = (1..=WORKERS)
        .map(|slot| {
            workers
                .iter()
                .filter(|w| w["slot"] == slot)
                .filter_map(|w| w["ready_seconds"].as_f64())
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    assert!(
        free_from.iter().all(|t| t.is_finite()),
        "a slot without a ready worker: {}",
        s["workers"]
    );
    check_schedule(&ran, &free_from);
}
