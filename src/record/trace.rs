//! `trace.json` in Chrome's Trace Event format, for Perfetto and chrome://tracing: one
//! complete event per attempt on the track of its worker slot, and per-core utilization as
//! counters (trace process 1, the run); one complete event per stretch a task was seen
//! running on a core, on that core's track (trace process 2, `CPU cores`: track `core N`
//! has `tid` N + 1). Times are microseconds from the run's start.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{AttemptRecord, Outcome};
use crate::state::RunState;

pub const FILE: &str = "trace.json";

/// The whole file.
#[derive(Debug, Serialize)]
pub struct Trace<'a> {
    #[serde(rename = "traceEvents")]
    pub trace_events: Vec<TraceEvent<'a>>,
    #[serde(rename = "displayTimeUnit")]
    pub display_time_unit: &'static str,
}

/// One event; which fields appear depends on `ph`.
#[derive(Debug, Serialize)]
pub struct TraceEvent<'a> {
    pub name: &'a str,
    pub ph: &'static str,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cat: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dur: Option<f64>,
    pub args: Args<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Args<'a> {
    Name {
        name: String,
    },
    SortIndex {
        sort_index: usize,
    },
    Attempt(AttemptArgs<'a>),
    OnCore {
        task: usize,
        attempt: u32,
        os_pid: u32,
        core: usize,
    },
    Counters(BTreeMap<String, f32>),
    Worker {
        os_pid: u32,
        note: String,
    },
}

#[derive(Debug, Serialize)]
pub struct AttemptArgs<'a> {
    pub task: usize,
    pub attempt: u32,
    pub os_pid: u32,
    pub outcome: std::borrow::Cow<'static, str>,
    /// Unmeasured values (no core seen, no CPU or memory counted, as for tiny items of a
    /// persistent worker) are left out.
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    pub cores: &'a [usize],
    #[serde(skip_serializing_if = "is_zero")]
    pub user_ms: f64,
    #[serde(skip_serializing_if = "is_zero")]
    pub system_ms: f64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub max_rss: u64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

/// The trace process of the run's slots, and that of its cores.
const RUN: u32 = 1;
const CORES: u32 = 2;

fn meta<'a>(pid: u32, name: &'a str, tid: usize, args: Args<'a>) -> TraceEvent<'a> {
    TraceEvent {
        name,
        ph: "M",
        pid,
        tid: Some(tid),
        cat: None,
        ts: None,
        dur: None,
        args,
    }
}

/// The trace of `state`.
pub fn render(state: &RunState) -> Trace<'_> {
    let mut events = head(state);
    events.extend(state.attempts.iter().map(|a| attempt_event(state, a)));
    events.extend(tail(state));
    events.extend(cores(state));
    Trace {
        trace_events: events,
        display_time_unit: "ms",
    }
}

/// The metadata events: the process's name, and each worker slot's track.
fn head(state: &RunState) -> Vec<TraceEvent<'_>> {
    let mut events = Vec::with_capacity(2 * state.slots.len() + 1);
    let name = state.info.as_ref().map_or("poolscope", |i| i.name.as_str());
    events.push(meta(
        RUN,
        "process_name",
        0,
        Args::Name {
            name: format!("poolscope: {name}"),
        },
    ));
    for slot in 1..=state.slots.len() {
        let label = format!("worker slot {slot}");
        events.push(meta(RUN, "thread_name", slot, Args::Name { name: label }));
        events.push(meta(
            RUN,
            "thread_sort_index",
            slot,
            Args::SortIndex { sort_index: slot },
        ));
    }
    events
}

/// The per-core tracks: their names, and each stretch a task ran on a core.
fn cores(state: &RunState) -> Vec<TraceEvent<'_>> {
    let spans: usize = state.core_spans.iter().map(Vec::len).sum();
    let mut events = Vec::with_capacity(spans + 2 * state.core_spans.len() + 2);
    let name = "CPU cores".to_string();
    events.push(meta(CORES, "process_name", 0, Args::Name { name }));
    events.push(meta(
        CORES,
        "process_sort_index",
        0,
        Args::SortIndex { sort_index: 2 },
    ));
    for (core, spans) in state.core_spans.iter().enumerate() {
        let tid = core + 1;
        let name = format!("core {core}");
        events.push(meta(CORES, "thread_name", tid, Args::Name { name }));
        events.push(meta(
            CORES,
            "thread_sort_index",
            tid,
            Args::SortIndex { sort_index: tid },
        ));
        for span in spans {
            events.push(TraceEvent {
                name: task_name(state, span.seq),
                ph: "X",
                pid: CORES,
                tid: Some(tid),
                cat: Some(category(state.span_outcome(span))),
                ts: Some(micros(span.start)),
                dur: Some(micros(span.end.saturating_sub(span.start))),
                args: Args::OnCore {
                    task: span.seq,
                    attempt: span.attempt,
                    os_pid: span.pid,
                    core,
                },
            });
        }
    }
    events
}

/// A task's name, as the task directory gives it (`task` if unknown).
fn task_name(state: &RunState, seq: usize) -> &str {
    match state.task_name(seq) {
        "" => "task",
        name => name,
    }
}

/// The `cat` of an attempt's events: how it ended (`running` if it had not).
fn category(outcome: Option<&Outcome>) -> &'static str {
    match outcome {
        None => "running",
        Some(o) if o.is_success() => "ok",
        Some(Outcome::Cancelled) => "cancelled",
        Some(_) => "failed",
    }
}

/// The complete event of one attempt of `state`'s run, on its slot's track.
fn attempt_event<'a>(state: &'a RunState, a: &'a AttemptRecord) -> TraceEvent<'a> {
    TraceEvent {
        name: task_name(state, a.key.seq),
        ph: "X",
        pid: RUN,
        tid: Some(a.slot),
        cat: Some(category(Some(&a.outcome))),
        ts: Some(micros(a.started)),
        dur: Some(micros(a.wall())),
        args: Args::Attempt(AttemptArgs {
            task: a.key.seq,
            attempt: a.key.attempt,
            os_pid: a.pid,
            outcome: if a.outcome.is_success() {
                "ok".into()
            } else {
                a.outcome.describe().into()
            },
            cores: &a.cores,
            user_ms: a.user.as_secs_f64() * 1000.0,
            system_ms: a.system.as_secs_f64() * 1000.0,
            max_rss: a.max_rss,
        }),
    }
}

/// What follows the attempts: persistent workers' marks and per-core utilization.
fn tail(state: &RunState) -> Vec<TraceEvent<'_>> {
    let mut events = Vec::with_capacity(state.cores.times.len() + 3 * state.workers.len());
    // Persistent workers: instant marks on their slot's track when one starts, is ready
    // and leaves (a recycled or replaced worker changes PID on the same track).
    for w in &state.workers {
        let marks = [
            (Some(w.started), "worker started", String::new()),
            (w.ready, "worker ready", String::new()),
            (w.exited, "worker gone", w.exit.clone().unwrap_or_default()),
        ];
        for (at, name, note) in marks {
            let Some(at) = at else { continue };
            events.push(TraceEvent {
                name,
                ph: "i",
                pid: RUN,
                tid: Some(w.slot),
                cat: Some("worker"),
                ts: Some(micros(at)),
                dur: None,
                args: Args::Worker {
                    os_pid: w.pid,
                    note,
                },
            });
        }
    }
    for (i, at) in state.cores.times.iter().enumerate() {
        let counters = state
            .cores
            .usage
            .iter()
            .enumerate()
            .map(|(core, series)| {
                let v = series.get(i).copied().unwrap_or(0.0);
                (format!("core {core}"), (v * 10.0).round() / 10.0)
            })
            .collect();
        events.push(TraceEvent {
            name: "CPU utilization %",
            ph: "C",
            pid: RUN,
            tid: None,
            cat: None,
            ts: Some(micros(*at)),
            dur: None,
            args: Args::Counters(counters),
        });
    }
    events
}

fn micros(d: std::time::Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0).round()
}
