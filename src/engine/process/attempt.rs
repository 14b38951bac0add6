//! One attempt: build the command, spawn it, capture it, and report what happened.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crossbeam_channel::Sender;

use super::RunContext;
use super::pump::{Pump, ReadBuf};
use crate::engine::launcher::{AttemptOrder, LaunchMsg};
use crate::engine::resolve::Resolver;
use crate::event::{AttemptRecord, LiveOutput, Stream};
use crate::guard::MARKER_VAR;
use crate::output::Capture;

/// Run one attempt to its end on this thread; true if it exited with status 0.
pub(super) fn run_attempt(
    order: &AttemptOrder,
    ctx: &RunContext,
    replies: &Sender<LaunchMsg>,
    resolver: &mut Resolver,
    buf: &mut ReadBuf,
) -> bool {
    let key = order.key;
    let stdout = Capture::of_attempt(&ctx.run_dir, key, Stream::Stdout, ctx.output_cap);
    let mut stderr = Capture::of_attempt(&ctx.run_dir, key, Stream::Stderr, ctx.output_cap);
    let argv = order.task.argv(Some(order.slot));
    let started = ctx.clock.now();
    let mut child = match command(order, ctx, resolver, &argv).spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = format!("cannot start `{}`: {e}", argv[0]);
            stderr.push(format!("poolscope: {error}\n").as_bytes());
            stderr.finish();
            stdout.finish();
            let record = AttemptRecord::not_started(key, order.slot, started, error);
            let _ = replies.send(LaunchMsg::Finished(Box::new(record)));
            return false;
        }
    };
    let pid = child.id();
    let _ = replies.send(LaunchMsg::Started {
        key,
        pid,
        at: started,
        output: LiveOutput {
            stdout: stdout.tail(),
            stderr: stderr.tail(),
        },
    });
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    // The child is reaped with wait4 by the pump, never through `Child`.
    drop(child);
    let mut pump = Pump::new(key, pid, ctx, replies, [stdout, stderr]);
    let exit = pump.run(pipes, buf);
    let [stdout, stderr] = pump.into_captures();
    let record = AttemptRecord {
        key,
        slot: order.slot,
        pid,
        started,
        ended: exit.at,
        outcome: exit.outcome,
        signal: exit.signal,
        user: exit.user,
        system: exit.system,
        max_rss: exit.max_rss,
        stderr_tail: stderr
            .tail()
            .last_lines(STDERR_TAIL_LINES, STDERR_TAIL_BYTES),
        stdout_bytes: stdout.finish(),
        stderr_bytes: stderr.finish(),
        cores: exit.last_core.into_iter().collect(),
        leftovers_killed: exit.leftovers_killed,
        is_final: false,
        result: None,
    };
    let success = record.outcome.is_success();
    let _ = replies.send(LaunchMsg::Finished(Box::new(record)));
    success
}

/// Lines, and at most bytes, of stderr kept with a failed attempt for error reports.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_BYTES: usize = 4096;

/// The command for `argv`: the program found on `PATH` once per slot, `argv[0]` as
/// written, the task's environment plus poolscope's variables, in its own process group.
fn command(
    order: &AttemptOrder,
    ctx: &RunContext,
    resolver: &mut Resolver,
    argv: &[String],
) -> Command {
    let key = order.key;
    let task_path = order
        .task
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsStr::new(v));
    let mut command = match resolver.resolve(&argv[0], task_path) {
        Some(file) => {
            let mut c = Command::new(file);
            c.arg0(&argv[0]);
            c
        }
        None => Command::new(&argv[0]),
    };
    command
        .args(&argv[1..])
        .current_dir(&order.task.cwd)
        .envs(order.task.env.iter().map(|(k, v)| (k, v)))
        .env("POOLSCOPE_TASK", key.seq.to_string())
        .env("POOLSCOPE_SLOT", order.slot.to_string())
        .env("POOLSCOPE_RUN", ctx.run_dir.as_os_str())
        .env(MARKER_VAR, ctx.marker.attempt(key))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    command
}
