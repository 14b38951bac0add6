//! What `poolscope run` prints: the load report (`--dry-run`) and the end-of-run summary,
//! all of it through [`terminal::escape`].

use std::fmt::Write as _;
use std::time::Duration;

use super::terminal::{self, escape};
use crate::config::PoolConfig;
use crate::human::seconds;
use crate::record::Summary;
use crate::state::RunState;
use crate::taskdir::TaskDir;

/// `writeln!` into a String, which cannot fail.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Print to stdout, flushed: an error (a full disk, a closed pipe) is the caller's to
/// report, never a panic.
pub fn print(text: &str) -> std::io::Result<()> {
    write_out(&escape(text))
}

/// Print one line of JSON to stdout, as [`print`] does; the JSON value is unchanged.
pub fn print_json(json: &str) -> std::io::Result<()> {
    write_out(&format!("{}\n", terminal::escape_json(json)))
}

fn write_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Standard output did not take `what`: exit code 1 (or `code`, if that is not 0), and a
/// sentence that says where the run's records are.
pub fn lost_output(what: &str, e: &std::io::Error, records: &str, code: u8) -> super::Failure {
    super::Failure {
        code: code.max(super::exit::TASKS_FAILED),
        message: format!(
            "cannot write {what} to standard output ({e}); the records on disk are not affected: {records}"
        ),
    }
}

/// A progress line on stderr, never a panic.
pub fn note(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{}", escape(text));
}

/// A warning line on stderr, never a panic.
pub fn warn(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "warning: {}", escape(text));
}

/// The load report of `--dry-run`.
pub fn load_report(dir: &TaskDir, config: &PoolConfig) -> String {
    let mut out = String::new();
    line!(out, "{} — {}", dir.name, dir.root.display());
    match &dir.manifest {
        Some(m) => line!(out, "manifest: {}", m.display()),
        None => line!(out, "manifest: none (every executable file is a task)"),
    }
    line!(
        out,
        "pool: {} workers, timeout {}, retries {}, halt {:?}, order {:?}, pin {}",
        config.workers,
        config.timeout.map_or("none".to_string(), seconds),
        config.retries,
        config.halt,
        config.order,
        config.pin
    );
    if let Some(worker) = dir.worker_line() {
        line!(out, "persistent workers: {worker}");
    }
    line!(out, "{} tasks:", dir.tasks.len());
    let width = dir.tasks.len().to_string().len();
    for task in &dir.tasks {
        line!(
            out,
            "  {:>width$}  {}  {}",
            task.seq,
            task.name,
            dir.shown_command(task)
        );
    }
    if !dir.ignored.is_empty() {
        line!(out, "ignored:");
        for i in &dir.ignored {
            line!(out, "  {} — {}", i.name, i.reason);
        }
    }
    for note in &dir.notes {
        line!(out, "note: {note}");
    }
    out
}

/// The end-of-run summary.
pub fn summary_text(state: &RunState, summary: &Summary) -> String {
    let mut out = String::new();
    let t = &summary.totals;
    let mut counts = format!(
        "{} tasks: {} ok, {} failed, {} timed out",
        t.tasks, t.ok, t.failed, t.timed_out
    );
    if t.cancelled > 0 {
        counts.push_str(&format!(", {} cancelled", t.cancelled));
    }
    if t.skipped > 0 {
        counts.push_str(&format!(", {} skipped", t.skipped));
    }
    if t.not_run > 0 {
        counts.push_str(&format!(", {} not run", t.not_run));
    }
    line!(out, "{}: {counts}", summary.name);
    let workers = summary.config.as_ref().map_or(0, |c| c.workers);
    let speedup = match state.speedup_or_why() {
        Ok(s) => format!(" → speed-up {s:.2}× on {workers} workers"),
        Err(why) => format!(" · no speed-up: {}", why.reason()),
    };
    line!(
        out,
        "wall {} · summed task time {} · estimated serial time {}{speedup}",
        seconds(state.elapsed()),
        seconds(state.task_time()),
        seconds(Duration::from_secs_f64(summary.serial_estimate_seconds)),
    );
    let failures = state.failures();
    if !failures.is_empty() {
        line!(out, "failures:");
        for f in failures {
            let name = state.task_name(f.key.seq);
            let last = f.stderr_tail.lines().last().unwrap_or("(no stderr)");
            line!(
                out,
                "  #{} {}: {} — {}",
                f.key.seq,
                name,
                f.outcome.describe(),
                last
            );
        }
    }
    line!(out, "run directory: {}", summary.run_dir);
    if let Some(line) = incomplete_records(summary) {
        line!(out, "{line}");
    }
    out
}

/// Files named in the line about incomplete records; the rest are counted.
const LOST_NAMED: usize = 5;

/// The line that says which records could not be written in full, if any.
pub fn incomplete_records(summary: &Summary) -> Option<String> {
    let lost = &summary.incomplete_records;
    let first = lost.first()?;
    let head = format!(
        "records incomplete (exit code {})",
        super::exit::RECORDS_INCOMPLETE
    );
    if lost.len() == 1 {
        return Some(format!(
            "{head}: {} could not be written in full: {}",
            first.file, first.error
        ));
    }
    let mut files: Vec<&str> = lost
        .iter()
        .take(LOST_NAMED)
        .map(|l| l.file.as_str())
        .collect();
    let more = lost.len() - files.len();
    let last = if more > 0 {
        format!("{more} more")
    } else {
        files.pop().unwrap_or_default().to_string()
    };
    Some(format!(
        "{head}: {} files could not be written in full ({} and {last}); the first error: {}",
        lost.len(),
        files.join(", "),
        first.error
    ))
}
