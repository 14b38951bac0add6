//! Folding event streams into the model, with no process and no clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::PoolConfig;
use crate::event::{RunInfo, SlotLoad, TaskInfo, WorkerChange};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn info(tasks: usize, workers: usize, cores: usize) -> Event {
    Event::RunStarted(Arc::new(RunInfo {
        name: "t".into(),
        run_dir: PathBuf::from("/tmp/run"),
        config: PoolConfig {
            workers,
            ..PoolConfig::default()
        },
        cores,
        started_at: SystemTime::UNIX_EPOCH,
        tasks: (1..=tasks)
            .map(|seq| TaskInfo {
                seq,
                name: format!("task {seq}"),
            })
            .collect(),
        cleanup: Default::default(),
    }))
}

fn output() -> LiveOutput {
    LiveOutput {
        stdout: Arc::default(),
        stderr: Arc::default(),
    }
}

fn started(seq: usize, attempt: u32, slot: usize, pid: u32, at: u64) -> Event {
    Event::AttemptStarted {
        key: AttemptKey { seq, attempt },
        slot,
        pid,
        at: ms(at),
        output: output(),
    }
}

fn finished(
    seq: usize,
    attempt: u32,
    slot: usize,
    span: (u64, u64),
    outcome: Outcome,
    is_final: bool,
) -> Event {
    let key = AttemptKey { seq, attempt };
    Event::AttemptFinished(Arc::new(AttemptRecord {
        pid: 100 + seq as u32,
        started: ms(span.0),
        ended: ms(span.1),
        outcome,
        stderr_tail: "boom".into(),
        is_final,
        ..AttemptRecord::not_started(key, slot, ms(span.0), String::new())
    }))
}

fn fold(events: &[Event]) -> RunState {
    let mut state = RunState::new();
    for e in events {
        state.apply(e);
    }
    state
}

const OK: Outcome = Outcome::Exited { code: 0 };

#[test]
fn counts_follow_the_tasks() {
    let s = fold(&[
        info(4, 2, 2),
        started(1, 1, 1, 101, 0),
        started(2, 1, 2, 102, 0),
        finished(1, 1, 1, (0, 1000), OK, true),
        finished(2, 1, 2, (0, 500), Outcome::Exited { code: 3 }, false),
        started(2, 2, 2, 202, 500),
        started(3, 1, 1, 103, 1000),
    ]);
    let c = s.counts();
    assert_eq!(
        c,
        Counts {
            total: 4,
            queued: 1,
            running: 2,
            ok: 1,
            failed: 0,
            timed_out: 0,
            cancelled: 0,
            skipped: 0
        }
    );
    assert_eq!(s.now, ms(1000));
}

#[test]
fn slots_show_the_live_pid_and_tally_attempts() {
    let s = fold(&[
        info(3, 1, 1),
        started(1, 1, 1, 101, 0),
        finished(1, 1, 1, (0, 10), Outcome::Signaled { signal: 9 }, true),
        started(2, 1, 1, 102, 10),
    ]);
    let slot = &s.slots[0];
    assert_eq!(slot.current.as_ref().map(|c| c.pid), Some(102));
    assert_eq!(slot.last_pid, Some(102));
    assert_eq!((slot.done, slot.failed), (1, 1));
    assert_eq!(s.failures().len(), 1);
    assert_eq!(s.counts().failed, 1);
}

#[test]
fn loads_update_slots_and_clear_when_the_task_ends() {
    let mut s = fold(&[info(1, 1, 1), started(1, 1, 1, 101, 0)]);
    s.apply(&Event::Placement {
        at: ms(250),
        placements: vec![],
        loads: vec![SlotLoad {
            slot: 1,
            cpu_percent: 97.0,
            rss: 4096,
        }],
    });
    assert_eq!(s.slots[0].cpu_percent, 97.0);
    assert_eq!(s.slots[0].rss, 4096);
    s.apply(&finished(1, 1, 1, (0, 300), OK, true));
    assert_eq!(s.slots[0].cpu_percent, 0.0);
}

#[test]
fn placements_become_per_core_spans() {
    let place = |at: u64, list: &[(usize, u32, usize)]| Event::Placement {
        at: ms(at),
        placements: list
            .iter()
            .map(|&(slot, pid, core)| Placement { slot, pid, core })
            .collect(),
        loads: vec![],
    };
    let s = fold(&[
        info(2, 2, 2),
        started(1, 1, 1, 101, 0),
        started(2, 1, 2, 102, 0),
        place(50, &[(1, 101, 0), (2, 102, 1)]),
        place(100, &[(1, 101, 0), (2, 102, 1)]),
        // Task 1 migrates to core 1; task 2 to core 0.
        place(150, &[(1, 101, 1), (2, 102, 0)]),
        finished(1, 1, 1, (0, 170), OK, true),
        finished(2, 1, 2, (0, 180), OK, true),
    ]);
    let core0: Vec<(usize, u64, u64)> = s.core_spans[0]
        .iter()
        .map(|sp| {
            (
                sp.seq,
                sp.start.as_millis() as u64,
                sp.end.as_millis() as u64,
            )
        })
        .collect();
    assert_eq!(core0, [(1, 50, 100), (2, 150, 180)]);
    let core1: Vec<usize> = s.core_spans[1].iter().map(|sp| sp.seq).collect();
    assert_eq!(core1, [2, 1]);
}

#[test]
fn core_usage_is_stored_by_column() {
    let s = fold(&[
        info(1, 1, 2),
        Event::CoreUsage {
            at: ms(250),
            usage: vec![10.0, 20.0],
        },
        Event::CoreUsage {
            at: ms(500),
            usage: vec![30.0, 40.0],
        },
    ]);
    assert_eq!(s.cores.times, [ms(250), ms(500)]);
    assert_eq!(s.cores.usage, [vec![10.0, 30.0], vec![20.0, 40.0]]);
}

#[test]
fn speedup_and_eta_come_from_task_times() {
    let mut s = fold(&[
        info(4, 2, 2),
        started(1, 1, 1, 101, 0),
        started(2, 1, 2, 102, 0),
        finished(1, 1, 1, (0, 1000), OK, true),
        finished(2, 1, 2, (0, 1000), OK, true),
        started(3, 1, 1, 103, 1000),
        started(4, 1, 2, 104, 1000),
    ]);
    // Two tasks left on two workers, a second each on average.
    assert_eq!(s.eta(), Some(Duration::from_secs(1)));
    s.apply(&finished(3, 1, 1, (1000, 2000), OK, true));
    s.apply(&finished(4, 1, 2, (1000, 2000), OK, true));
    s.apply(&Event::RunFinished {
        at: ms(2000),
        interrupted: false,
        self_cpu: ms(5),
    });
    assert_eq!(s.task_time(), Duration::from_secs(4));
    assert_eq!(s.speedup(), Some(2.0));
    assert_eq!(s.eta(), Some(Duration::ZERO));
    assert_eq!(s.counts().ok, 4);
}

fn ended(at: u64, interrupted: bool) -> Event {
    Event::RunFinished {
        at: ms(at),
        interrupted,
        self_cpu: ms(1),
    }
}

#[test]
fn cancelled_tasks_are_counted_apart_from_failures() {
    let s = fold(&[
        info(3, 2, 2),
        finished(1, 1, 1, (0, 100), OK, true),
        finished(2, 1, 2, (0, 100), Outcome::Exited { code: 1 }, true),
        finished(3, 1, 1, (100, 200), Outcome::Cancelled, true),
        ended(200, false),
    ]);
    let c = s.counts();
    assert_eq!((c.ok, c.failed, c.cancelled, c.done()), (1, 1, 1, 3));
}

#[test]
fn only_a_complete_run_with_a_success_has_a_speed_up() {
    let run = |outcome: Outcome, end: Option<Event>| {
        let mut events = vec![
            info(2, 2, 2),
            finished(1, 1, 1, (0, 1000), outcome.clone(), true),
            finished(2, 1, 2, (0, 1000), outcome, true),
        ];
        events.extend(end);
        fold(&events).speedup_or_why()
    };
    assert_eq!(run(OK, Some(ended(1000, false))), Ok(2.0));
    assert_eq!(run(OK, None), Err(NoSpeedup::Running));
    assert_eq!(
        run(OK, Some(ended(1000, true))),
        Err(NoSpeedup::Interrupted)
    );
    assert_eq!(
        run(Outcome::Exited { code: 2 }, Some(ended(1000, false))),
        Err(NoSpeedup::NoSuccess)
    );
    // Tasks left behind by a halt: the run is not complete; a task done before (resume)
    // leaves it complete.
    let skipped = |reason: SkipReason| {
        fold(&[
            info(2, 2, 2),
            finished(1, 1, 1, (0, 1000), OK, true),
            Event::TaskSkipped { seq: 2, reason },
            ended(1000, false),
        ])
        .speedup_or_why()
    };
    assert_eq!(skipped(SkipReason::Halted), Err(NoSpeedup::Interrupted));
    // `halt = "now"` after a failure cancels what runs, with nothing left queued.
    let halted_now = fold(&[
        info(2, 2, 2),
        finished(1, 1, 1, (0, 1000), OK, true),
        finished(2, 1, 2, (0, 500), Outcome::Cancelled, true),
        ended(1000, false),
    ]);
    assert_eq!(halted_now.speedup_or_why(), Err(NoSpeedup::Interrupted));
    assert_eq!(skipped(SkipReason::AlreadyDone), Ok(1.0));
    // Tasks of microseconds in a run of seconds: 0.00× would say nothing true.
    let tiny = fold(&[
        info(1, 1, 1),
        finished(1, 1, 1, (0, 0), OK, true),
        ended(2000, false),
    ]);
    assert_eq!(tiny.speedup_or_why(), Err(NoSpeedup::TooShort));
}

#[test]
fn skipped_tasks_are_counted_apart() {
    let s = fold(&[
        info(3, 1, 1),
        Event::TaskSkipped {
            seq: 1,
            reason: SkipReason::AlreadyDone,
        },
        started(2, 1, 1, 102, 0),
        finished(2, 1, 1, (0, 5), Outcome::TimedOut, true),
        Event::TaskSkipped {
            seq: 3,
            reason: SkipReason::Halted,
        },
    ]);
    let c = s.counts();
    assert_eq!((c.skipped, c.timed_out, c.queued), (2, 1, 0));
}

#[test]
fn a_new_run_starts_from_scratch() {
    let mut s = fold(&[info(1, 1, 1), started(1, 1, 1, 101, 0)]);
    s.apply(&info(2, 3, 1));
    assert_eq!(s.tasks.len(), 2);
    assert_eq!(s.slots.len(), 3);
    assert!(s.attempts.is_empty());
}

#[test]
fn busy_counts_running_tasks_over_time() {
    let s = fold(&[
        info(3, 2, 1),
        started(1, 1, 1, 101, 0),
        started(2, 1, 2, 102, 10),
        finished(1, 1, 1, (0, 20), OK, true),
        started(3, 1, 1, 103, 20),
        finished(2, 1, 2, (10, 30), OK, true),
        finished(3, 1, 1, (20, 40), OK, true),
    ]);
    let counts: Vec<(u64, u32)> = s
        .busy
        .iter()
        .map(|&(t, n)| (t.as_millis() as u64, n))
        .collect();
    assert_eq!(
        counts,
        [(0, 1), (10, 2), (20, 1), (20, 2), (30, 1), (40, 0)]
    );
}

#[test]
fn an_item_started_again_on_a_fresh_worker_is_busy_once() {
    let s = fold(&[
        info(1, 1, 1),
        started(1, 1, 1, 101, 0),
        started(1, 1, 1, 202, 10),
        finished(1, 1, 1, (10, 20), OK, true),
    ]);
    let counts: Vec<(u64, u32)> = s
        .busy
        .iter()
        .map(|&(t, n)| (t.as_millis() as u64, n))
        .collect();
    assert_eq!(counts, [(0, 1), (20, 0)]);
    assert_eq!(s.slots[0].last_pid, Some(202));
}

#[test]
fn worker_lives_keep_their_start_readiness_and_how_they_ended() {
    let worker = |pid: u32, at: u64, change: WorkerChange| Event::Worker {
        slot: 1,
        pid,
        at: ms(at),
        change,
    };
    let s = fold(&[
        info(2, 1, 1),
        worker(7, 0, WorkerChange::Started),
        worker(7, 150, WorkerChange::Ready),
        worker(
            7,
            400,
            WorkerChange::Exited {
                outcome: Outcome::Signaled { signal: 9 },
                why: "died on an item".into(),
            },
        ),
        worker(8, 400, WorkerChange::Started),
        worker(8, 520, WorkerChange::Ready),
        worker(
            8,
            900,
            WorkerChange::Exited {
                outcome: OK,
                why: "the run ended".into(),
            },
        ),
    ]);
    let lives: Vec<_> = s
        .slot_workers(1)
        .map(|w| (w.pid, w.started, w.ready, w.exited, w.clean_exit))
        .collect();
    assert_eq!(
        lives,
        [
            (7, ms(0), Some(ms(150)), Some(ms(400)), false),
            (8, ms(400), Some(ms(520)), Some(ms(900)), true),
        ]
    );
}

#[test]
fn the_pools_cpu_is_the_sum_of_its_slots_at_each_load_sample() {
    let load = |at: u64, loads: &[(usize, f32)]| Event::Placement {
        at: ms(at),
        placements: vec![],
        loads: loads
            .iter()
            .map(|&(slot, cpu_percent)| SlotLoad {
                slot,
                cpu_percent,
                rss: 1 << 20,
            })
            .collect(),
    };
    let s = fold(&[
        info(2, 2, 2),
        load(250, &[(1, 90.0), (2, 60.0)]),
        // A sample without loads (a fast tick) adds nothing.
        load(300, &[]),
        load(500, &[(2, 100.0)]),
    ]);
    assert_eq!(s.pool_cpu, [(ms(250), 150.0), (ms(500), 100.0)]);
}
