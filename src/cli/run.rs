//! `poolscope run DIR`.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::Arc;

use super::interrupt::{self, Interrupt};
use super::progress::Progress;
use super::{Failure, RunArgs, exit, report};
use crate::engine::{self, RunError, RunOptions};
use crate::event::Event;
use crate::record::Summary;
use crate::state::RunState;
use crate::taskdir;

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let dir = taskdir::load(&args.dir).map_err(Failure::bad_input)?;
    let config = args.pool.settings().or(&dir.pool).resolve();
    if args.dry_run {
        return report::print(&report::load_report(&dir, &config))
            .map(|()| exit::OK)
            .map_err(|e| Failure {
                code: exit::TASKS_FAILED,
                message: format!("cannot write the load report to standard output ({e})"),
            });
    }
    let run_dir = match (&args.out, args.resume) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => Some(engine::latest_run(&dir.root).ok_or_else(|| {
            Failure::bad_input(format!(
                "--resume found no earlier run in {}; run without --resume first, or pass --out RUNDIR",
                crate::record::rundir::runs_folder(&dir.root).display()
            ))
        })?),
        (None, false) => None,
    };
    let options = RunOptions {
        run_dir,
        resume: args.resume,
        output_cap: args.output_cap,
        // The guardian sweeps as this process exits, right after the run.
        final_sweep: false,
        guardian: std::env::current_exe().ok(),
        waker: None,
    };
    let cannot_start = |e: RunError| match e {
        RunError::RunDir { .. } | RunError::Joblog { .. } | RunError::Busy { .. } => {
            Failure::bad_input(e)
        }
        other => Failure {
            code: exit::TASKS_FAILED,
            message: other.to_string(),
        },
    };
    let run = engine::prepare(&dir, config, options).map_err(cannot_start)?;
    for note in run.note().into_iter().chain(run.cleanup().note.as_deref()) {
        report::note(&format!("note: {note}"));
    }
    let interrupt = Interrupt::install(run.controller());
    let mut state = RunState::new();
    // `summary.json` as the run's end rendered it, for `--json`.
    let mut rendered: Option<Arc<str>> = None;
    let progress = RefCell::new(Progress::new(std::io::stderr().is_terminal(), args.json));
    let mut fold = |event: &Event| {
        if let Event::Summary(json) = event {
            rendered = Some(Arc::clone(json));
        }
        state.apply(event);
        progress.borrow_mut().on_event(event, &state);
        interrupt.check();
        crate::engine::panics::injected("fold");
    };
    let idle = || {
        progress.borrow_mut().idle();
        interrupt.check();
    };
    // The run goes on its own thread; its events are folded and printed here.
    let handle = run.start().map_err(cannot_start)?;
    loop {
        let event = match handle.events.try_recv() {
            Ok(event) => event,
            Err(_) => {
                idle();
                match handle.events.recv() {
                    Ok(event) => event,
                    Err(_) => break,
                }
            }
        };
        fold(&event);
        if matches!(event, Event::RunFinished { .. }) {
            break;
        }
    }
    let run_dir = handle.run_dir.clone();
    let joined = handle.join();
    progress.borrow_mut().finish();
    if let Err(panic) = joined {
        return Err(Failure::internal(
            &panic,
            &format!(
                "the run stopped there, and what it recorded is in {}",
                run_dir.display()
            ),
        ));
    }
    // Without per-task entries: a run may have many tasks.
    let no_tasks: &[Arc<crate::task::Task>] = &[];
    let summary = Summary::of(&state, no_tasks);
    let incomplete = report::incomplete_records(&summary);
    let printed = if args.json {
        if let Some(line) = &incomplete {
            report::warn(line);
        }
        // Exactly what `summary.json` holds: as the run's end rendered it, or, for a run
        // too large to hold it whole, rendered again here.
        match rendered {
            Some(json) => report::print_json(&json),
            None => print_json(&Summary::of(&state, &dir.tasks)),
        }
    } else {
        report::print(&report::summary_text(&state, &summary))
    };
    let code = exit_code(&summary, interrupt::interrupted());
    match printed {
        Ok(()) => Ok(code),
        Err(e) => Err(report::lost_output(
            "the summary",
            &e,
            &format!("the run is recorded in {}", summary.run_dir),
            code,
        )),
    }
}

/// Print `summary` on standard output as one line of JSON, as it is rendered.
fn print_json(summary: &Summary) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut json = serde_json::Serializer::with_formatter(&mut out, super::terminal::JsonFormatter);
    serde::Serialize::serialize(summary, &mut json).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()
}

fn exit_code(summary: &Summary, interrupted: bool) -> u8 {
    let t = &summary.totals;
    if interrupted {
        exit::INTERRUPTED
    } else if !summary.incomplete_records.is_empty() {
        exit::RECORDS_INCOMPLETE
    } else if t.failed + t.timed_out + t.cancelled > 0 || t.not_run > 0 || summary.interrupted {
        exit::TASKS_FAILED
    } else {
        exit::OK
    }
}
