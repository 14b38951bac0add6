//! What `poolscope run` prints: the load report (`--dry-run`) and the end-of-run summary.

use std::time::Duration;

use crate::config::PoolConfig;
use crate::record::Summary;
use crate::state::RunState;
use crate::taskdir::TaskDir;

/// `1.234s`, or `2m03.4s` past a minute.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.3}s")
    } else {
        format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0)
    }
}

pub fn print_load_report(dir: &TaskDir, config: &PoolConfig) {
    println!("{} — {}", dir.name, dir.root.display());
    match &dir.manifest {
        Some(m) => println!("manifest: {}", m.display()),
        None => println!("manifest: none (every executable file is a task)"),
    }
    println!(
        "pool: {} workers, timeout {}, retries {}, halt {:?}, order {:?}, pin {}",
        config.workers,
        config.timeout.map_or("none".to_string(), seconds),
        config.retries,
        config.halt,
        config.order,
        config.pin
    );
    println!("{} tasks:", dir.tasks.len());
    let width = dir.tasks.len().to_string().len();
    for task in &dir.tasks {
        println!(
            "  {:>width$}  {}  $ {}",
            task.seq,
            task.name,
            task.command_line(None)
        );
    }
    if !dir.ignored.is_empty() {
        println!("ignored:");
        for i in &dir.ignored {
            println!("  {} — {}", i.name, i.reason);
        }
    }
    for note in &dir.notes {
        println!("note: {note}");
    }
}

pub fn print_summary(state: &RunState, summary: &Summary) {
    let t = &summary.totals;
    let mut counts = format!(
        "{} tasks: {} ok, {} failed, {} timed out",
        t.tasks, t.ok, t.failed, t.timed_out
    );
    if t.skipped > 0 {
        counts.push_str(&format!(", {} skipped", t.skipped));
    }
    if t.not_run > 0 {
        counts.push_str(&format!(", {} not run", t.not_run));
    }
    println!("{}: {counts}", summary.name);
    let workers = summary.config.as_ref().map_or(0, |c| c.workers);
    let speedup = summary.speedup.map_or_else(String::new, |s| {
        format!(" → speed-up {s:.2}× on {workers} workers")
    });
    println!(
        "wall {} · summed task time {} · estimated serial time {}{speedup}",
        seconds(state.elapsed()),
        seconds(state.task_time()),
        seconds(Duration::from_secs_f64(summary.serial_estimate_seconds)),
    );
    let failures = state.failures();
    if !failures.is_empty() {
        println!("failures:");
        for f in failures {
            let name = summary
                .tasks
                .get(f.key.seq - 1)
                .map_or("", |t| t.name.as_str());
            let last = f.stderr_tail.lines().last().unwrap_or("(no stderr)");
            println!(
                "  #{} {}: {} — {}",
                f.key.seq,
                name,
                f.outcome.describe(),
                last
            );
        }
    }
    println!("run directory: {}", summary.run_dir);
}
