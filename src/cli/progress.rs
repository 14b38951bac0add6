//! Progress while a run goes: a bar with ETA on a terminal, plain lines otherwise.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::event::{AttemptRecord, Event};
use crate::state::RunState;

pub enum Progress {
    Bar(ProgressBar),
    /// Lines gathered while events arrive back to back, written when the run is idle.
    Lines(std::io::BufWriter<std::io::Stderr>),
    Quiet,
}

impl Progress {
    /// A bar on a terminal; plain lines on stderr otherwise; nothing with `--json` off a terminal.
    pub fn new(terminal: bool, json: bool) -> Self {
        if terminal {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else if json {
            Progress::Quiet
        } else {
            Progress::Lines(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stderr(),
            ))
        }
    }

    pub fn on_event(&mut self, event: &Event, state: &RunState) {
        match (self, event) {
            (Progress::Bar(bar), Event::RunStarted(info)) => {
                bar.set_length(info.tasks.len() as u64)
            }
            (
                Progress::Bar(bar),
                Event::AttemptStarted { .. }
                | Event::AttemptFinished(_)
                | Event::TaskSkipped { .. },
            ) => {
                let c = state.counts();
                bar.set_position((c.done() + c.skipped) as u64);
                let eta = state.eta().map_or_else(String::new, |d| {
                    format!(" · ETA {}", crate::human::seconds(d))
                });
                let cancelled = if c.cancelled > 0 {
                    format!(" · cancelled {}", c.cancelled)
                } else {
                    String::new()
                };
                bar.set_message(format!(
                    "ok {} · failed {} · timed out {}{cancelled} · running {}{eta}",
                    c.ok, c.failed, c.timed_out, c.running
                ));
            }
            (Progress::Lines(out), Event::AttemptFinished(record)) => {
                let total = state.tasks.len();
                let done = state.counts().done();
                let line = line(record, state, done, total);
                let _ = writeln!(out, "{}", super::terminal::escape(&line));
            }
            (Progress::Lines(out), Event::RecordProblem(problem)) => {
                let _ = out.flush();
                super::report::warn(&problem.to_string())
            }
            (_, Event::RecordProblem(problem)) => super::report::warn(&problem.to_string()),
            _ => {}
        }
    }

    /// No event is waiting: show what was gathered.
    pub fn idle(&mut self) {
        if let Progress::Lines(out) = self {
            let _ = out.flush();
        }
    }

    pub fn finish(&mut self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines(out) => {
                let _ = out.flush();
            }
            Progress::Quiet => {}
        }
    }
}

fn line(record: &AttemptRecord, state: &RunState, done: usize, total: usize) -> String {
    let width = total.to_string().len();
    let name = state
        .info
        .as_ref()
        .and_then(|i| i.tasks.get(record.key.seq - 1))
        .map_or("", |t| t.name.as_str());
    let retry = if record.is_final { "" } else { " (will retry)" };
    let mut line = format!(
        "[{done:>width$}/{total}] {:<10} {:>9}  #{} {}  (slot {}, pid {}){retry}",
        record.outcome.describe_short(),
        crate::human::seconds(record.wall()),
        record.key.seq,
        name,
        record.slot,
        record.pid,
    );
    if !record.outcome.is_success()
        && let Some(last) = record.stderr_tail.lines().last()
    {
        line.push_str(": ");
        line.push_str(last);
    }
    line
}
