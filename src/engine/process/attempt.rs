//! One attempt: build the command, start it, capture it until it ends, and make its record.

use crossbeam_channel::Sender;

use super::RunContext;
use super::pump::Pump;
use super::room;
use crate::engine::child::{self, STDERR_TAIL_BYTES, STDERR_TAIL_LINES};
use crate::engine::launcher::{AttemptOrder, LaunchMsg};
use crate::event::{AttemptRecord, LiveOutput, Stream};
use crate::guard::MARKER_VAR;
use crate::output::Capture;

/// Run `order` to its end on this thread: `Started` goes out as its process starts; the
/// record is returned (that of an attempt that could not start, if so).
pub(super) fn run(
    order: &AttemptOrder,
    ctx: &RunContext,
    replies: &Sender<LaunchMsg>,
    buf: &mut [u8],
) -> Box<AttemptRecord> {
    let key = order.key;
    let stdout = Capture::of_attempt(&ctx.run_dir, key, Stream::Stdout, ctx.output_cap);
    let mut stderr = Capture::of_attempt(&ctx.run_dir, key, Stream::Stderr, ctx.output_cap);
    let argv = order.task.argv(Some(order.slot));
    let spec = spec(order, ctx, &argv);
    let (started, spawned) = loop {
        let started = ctx.clock.now();
        match child::spawn(&spec) {
            Err(e) if room::is_transient(&e) && ctx.running.wait_for_room() => continue,
            other => break (started, other),
        }
    };
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            let why = if order.task.cwd.is_dir() {
                e.to_string()
            } else {
                format!(
                    "cannot change to the directory `{}`: {e}",
                    order.task.cwd.display()
                )
            };
            let error = format!("cannot start `{}`: {why}", crate::human::name(&argv[0]));
            stderr.push(format!("poolscope: {error}\n").as_bytes());
            let lost = [stdout.finish().lost, stderr.finish().lost];
            let mut record = AttemptRecord::not_started(key, order.slot, started, error);
            record.lost = lost.into_iter().flatten().collect();
            return Box::new(record);
        }
    };
    let pid = spawned.pid;
    let _live = ctx.running.started();
    let _ = replies.send(LaunchMsg::Started {
        key,
        pid,
        at: started,
        output: LiveOutput {
            stdout: stdout.tail(),
            stderr: stderr.tail(),
        },
    });
    let mut pump = Pump::new(key, pid, ctx, replies, [stdout, stderr]);
    let exit = pump.run(spawned, buf);
    let [stdout, stderr] = pump.into_captures();
    let stderr_tail = stderr
        .tail()
        .last_lines(STDERR_TAIL_LINES, STDERR_TAIL_BYTES);
    let (stdout, stderr) = (stdout.finish(), stderr.finish());
    Box::new(AttemptRecord {
        key,
        slot: order.slot,
        pid,
        started,
        ended: exit.at,
        signal: match exit.outcome {
            crate::event::Outcome::Signaled { signal } => Some(signal),
            _ => None,
        },
        outcome: exit.outcome,
        user: exit.usage.user,
        system: exit.usage.system,
        max_rss: exit.usage.max_rss,
        stderr_tail,
        stdout_bytes: stdout.total,
        stderr_bytes: stderr.total,
        cores: exit.last_core.into_iter().collect(),
        leftovers_killed: exit.leftovers_killed,
        is_final: false,
        result: None,
        lost: [stdout.lost, stderr.lost].into_iter().flatten().collect(),
    })
}

/// What to start for `argv`: the task's directory and environment plus poolscope's
/// variables.
fn spec<'a>(
    order: &AttemptOrder,
    ctx: &RunContext,
    argv: &[std::ffi::OsString],
) -> child::Spec<'a> {
    let key = order.key;
    let mut spec = child::Spec::new(argv, &order.task.cwd);
    for (k, v) in &order.task.env {
        spec = spec.env(k, v);
    }
    spec.env("POOLSCOPE_TASK", key.seq.to_string())
        .env("POOLSCOPE_SLOT", order.slot.to_string())
        .env("POOLSCOPE_RUN", ctx.run_dir.as_os_str())
        .env(MARKER_VAR, ctx.marker.attempt(key))
}
