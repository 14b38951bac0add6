//! One attempt: build the command, spawn it, capture it until it ends, and make its record.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::RunContext;
use super::pump::{Held, Pump, ReadBuf};
use super::spawn::{self, Spawned};
use crate::engine::launcher::{AttemptOrder, LaunchMsg};
use crate::event::{AttemptKey, AttemptRecord, LiveOutput, Stream};
use crate::guard::MARKER_VAR;
use crate::output::Capture;

/// An attempt whose process runs: what is needed to report it and see it to its end.
pub(super) struct Running {
    key: AttemptKey,
    slot: usize,
    pid: u32,
    pidfd: Option<OwnedFd>,
    started: Duration,
    pipes: [Option<OwnedFd>; 2],
    captures: [Capture; 2],
}

/// Spawn `order`'s process. Reports nothing: the caller does, with [`Running::started`], or
/// the record of an attempt that could not start.
pub(super) fn start_attempt(
    order: &AttemptOrder,
    ctx: &RunContext,
) -> Result<Running, Box<AttemptRecord>> {
    let key = order.key;
    let stdout = Capture::of_attempt(&ctx.run_dir, key, Stream::Stdout, ctx.output_cap);
    let mut stderr = Capture::of_attempt(&ctx.run_dir, key, Stream::Stderr, ctx.output_cap);
    let argv = order.task.argv(Some(order.slot));
    let started = ctx.clock.now();
    let spawned = match spawn_command(order, ctx, &argv) {
        Ok(spawned) => spawned,
        Err(e) => {
            let error = format!("cannot start `{}`: {e}", argv[0]);
            stderr.push(format!("poolscope: {error}\n").as_bytes());
            stderr.finish();
            stdout.finish();
            return Err(Box::new(AttemptRecord::not_started(
                key, order.slot, started, error,
            )));
        }
    };
    let Spawned {
        pid,
        pidfd,
        stdout: out,
        stderr: err,
    } = spawned;
    Ok(Running {
        key,
        slot: order.slot,
        pid,
        pidfd,
        started,
        pipes: [Some(out), Some(err)],
        captures: [stdout, stderr],
    })
}

impl Running {
    /// The message that says it started.
    pub(super) fn started(&self) -> LaunchMsg {
        LaunchMsg::Started {
            key: self.key,
            pid: self.pid,
            at: self.started,
            output: LiveOutput {
                stdout: self.captures[0].tail(),
                stderr: self.captures[1].tail(),
            },
        }
    }

    /// Capture its output until it has ended, on this thread; its record. `held` is sent
    /// on the way (see [`Held`]).
    pub(super) fn finish(
        self,
        ctx: &RunContext,
        replies: &Sender<LaunchMsg>,
        buf: &mut ReadBuf,
        held: Held,
    ) -> Box<AttemptRecord> {
        let Running {
            key,
            slot,
            pid,
            pidfd,
            started,
            pipes,
            captures,
        } = self;
        let mut pump = Pump::new(key, (pid, started), ctx, replies, captures, held);
        let exit = pump.run(pipes, pidfd, buf);
        let [stdout, stderr] = pump.into_captures();
        Box::new(AttemptRecord {
            key,
            slot,
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
        })
    }
}

/// Lines, and at most bytes, of stderr kept with a failed attempt for error reports.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_BYTES: usize = 4096;

/// Start `argv`: the program found on `PATH` once per run, `argv[0]` as written, the
/// task's environment plus poolscope's variables, in its own process group.
fn spawn_command(
    order: &AttemptOrder,
    ctx: &RunContext,
    argv: &[String],
) -> std::io::Result<Spawned> {
    let key = order.key;
    let task_path = order
        .task
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsStr::new(v));
    let program = if argv[0].contains('/') {
        OsString::from(&argv[0])
    } else {
        match ctx.programs.resolve(&argv[0], task_path) {
            Some(file) => file.into_os_string(),
            None => return Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
        }
    };
    let (task, slot, marker) = (
        key.seq.to_string(),
        order.slot.to_string(),
        ctx.marker.attempt(key),
    );
    let vars: Vec<(&OsStr, &OsStr)> = order
        .task
        .env
        .iter()
        .map(|(k, v)| (OsStr::new(k), OsStr::new(v)))
        .chain([
            (OsStr::new("POOLSCOPE_TASK"), OsStr::new(&task)),
            (OsStr::new("POOLSCOPE_SLOT"), OsStr::new(&slot)),
            (OsStr::new("POOLSCOPE_RUN"), ctx.run_dir.as_os_str()),
            (OsStr::new(MARKER_VAR), OsStr::new(&marker)),
        ])
        .collect();
    spawn::spawn(&spawn::Command {
        program: &program,
        argv,
        cwd: &order.task.cwd,
        environment: &ctx.environment,
        vars: &vars,
    })
}
