//! `trace.json` in Chrome's Trace Event format, for Perfetto and chrome://tracing: one
//! complete event per attempt on the track of its worker slot, and per-core utilization as
//! counters. Times are microseconds from the run's start.

use serde_json::{Value, json};

use crate::state::RunState;

pub const FILE: &str = "trace.json";

/// The trace of `state` as JSON.
pub fn render(state: &RunState) -> Value {
    let mut events = Vec::with_capacity(state.attempts.len() + state.cores.times.len() + 8);
    let name = state.info.as_ref().map_or("poolscope", |i| i.name.as_str());
    events.push(
        json!({"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
        "args": {"name": format!("poolscope: {name}")}}),
    );
    for slot in 1..=state.slots.len() {
        events.push(
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": slot,
            "args": {"name": format!("worker slot {slot}")}}),
        );
        events.push(
            json!({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": slot,
            "args": {"sort_index": slot}}),
        );
    }
    let task_names: Vec<&str> = state
        .info
        .as_ref()
        .map(|i| i.tasks.iter().map(|t| t.name.as_str()).collect())
        .unwrap_or_default();
    for a in &state.attempts {
        let name = task_names.get(a.key.seq - 1).copied().unwrap_or("task");
        events.push(json!({
            "name": name,
            "cat": if a.outcome.is_success() { "ok" } else { "failed" },
            "ph": "X",
            "pid": 1,
            "tid": a.slot,
            "ts": micros(a.started),
            "dur": micros(a.wall()),
            "args": {
                "task": a.key.seq,
                "attempt": a.key.attempt,
                "os_pid": a.pid,
                "outcome": a.outcome.describe(),
                "cores": a.cores,
                "user_ms": a.user.as_secs_f64() * 1000.0,
                "system_ms": a.system.as_secs_f64() * 1000.0,
                "max_rss": a.max_rss,
            }
        }));
    }
    for (i, at) in state.cores.times.iter().enumerate() {
        let mut args = serde_json::Map::new();
        for (core, series) in state.cores.usage.iter().enumerate() {
            let v = series.get(i).copied().unwrap_or(0.0);
            args.insert(format!("core {core}"), json!((v * 10.0).round() / 10.0));
        }
        events.push(json!({"name": "CPU utilization %", "ph": "C", "pid": 1, "ts": micros(*at), "args": args}));
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

fn micros(d: std::time::Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0).round()
}
