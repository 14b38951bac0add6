//! The engine: runs a task directory on a pool of processes and reports what happens as
//! a stream of [`Event`]s. It knows nothing of any face; faces fold the events into a
//! [`crate::state::RunState`] and may send [`Control`]s back.

pub mod child;
mod clock;
pub mod launcher;
pub mod panics;
pub mod process;
pub mod scheduler;
pub mod workers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

pub use clock::RunClock;

use crate::config::{Order, PoolConfig};
use crate::event::{CleanupInfo, Control, Event, RunInfo, SkipReason, TaskInfo};
use crate::guard::{self, RunMarker};
use crate::monitor::{self, Monitor, Watched};
use crate::output::DEFAULT_FILE_CAP;
use crate::record::{Recorder, history, joblog, lock, resume, rundir};
use crate::task::Task;
use crate::taskdir::TaskDir;
use crate::worker::WorkerSpec;
use launcher::Launcher;
use process::{ProcessLauncher, RunContext};
use scheduler::{Inputs, Scheduler};
use workers::{WorkerContext, WorkerLauncher};

/// How to run, beyond the pool's configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the run's records go (created if missing); `None`: a fresh directory under
    /// the task directory's runs folder (see [`rundir::create_fresh`]).
    pub run_dir: Option<PathBuf>,
    /// Skip the tasks that already have a successful line in `run_dir`'s joblog (matched
    /// by Seq and Command, see [`resume`]).
    pub resume: bool,
    /// Cap of each saved output stream, bytes.
    pub output_cap: u64,
    /// The `poolscope` executable, run as the guardian that kills every process this one
    /// started should this one die (see [`crate::guard`]), and as the worker serving
    /// built-in kernels. `None` starts no guardian (`poolscope run` has forked one before;
    /// otherwise the run is unguarded), and kernels are served by the current executable.
    pub guardian: Option<PathBuf>,
    /// Called after every event is sent, e.g. to wake a GUI's event loop.
    pub waker: Option<Waker>,
    /// Once the run has ended, kill whatever of its processes escaped their process groups
    /// and still lives. With `false` this is left to the guardian, which does it as this
    /// process exits (the command line exits right after its run); without a live
    /// guardian the run sweeps anyway.
    pub final_sweep: bool,
}

/// A callback that wakes whoever reads the events.
#[derive(Clone)]
pub struct Waker(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

impl RunOptions {
    /// A new run recorded in a fresh run directory of its task directory, guarded by the
    /// current executable.
    pub fn fresh() -> Self {
        RunOptions {
            run_dir: None,
            resume: false,
            output_cap: DEFAULT_FILE_CAP,
            guardian: std::env::current_exe().ok(),
            waker: None,
            final_sweep: true,
        }
    }
}

/// A run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the run directory `{}`: {source}; pass --out to record the run elsewhere", path.display())]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot record in the run directory `{}`: {source}; wait for that run to end, or pass --out RUNDIR to record elsewhere", path.display())]
    Busy {
        path: PathBuf,
        #[source]
        source: lock::LockError,
    },
    #[error("cannot read the joblog `{}` to resume: {source}", path.display())]
    Joblog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the guardian process `{}`: {source}", path.display())]
    Guardian {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("internal error: {0}; the run stopped there")]
    Panicked(String),
}

/// A live run: its events, and a way to steer it.
pub struct RunHandle {
    pub events: Receiver<Event>,
    pub run_dir: PathBuf,
    controls: Sender<Control>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl RunHandle {
    /// A sender of controls that outlives borrows of the handle.
    pub fn controller(&self) -> Sender<Control> {
        self.controls.clone()
    }

    pub fn control(&self, control: Control) {
        let _ = self.controls.send(control);
    }

    /// Wait for the run's thread to end (after `RunFinished`, or after its events end
    /// without one). `Err` describes the panic that ended the run: an internal error.
    pub fn join(mut self) -> Result<(), String> {
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(panic))) => Err(panic),
            Some(Err(payload)) => Err(panics::describe(&*payload)),
        }
    }
}

/// Start running `dir`'s tasks with `config` on a thread of their own; the events arrive on
/// the handle.
pub fn start(
    dir: &TaskDir,
    config: PoolConfig,
    options: RunOptions,
) -> Result<RunHandle, RunError> {
    prepare(dir, config, options)?.start()
}

/// A run whose directory, records and guardian are ready, and which has started no task
/// yet: [`Prepared::start`] runs it on a thread of its own.
pub struct Prepared {
    run: Run,
    controls: Sender<Control>,
    waker: Option<Waker>,
    pub run_dir: PathBuf,
    /// Something about the run worth a line before it starts (`--resume` of a changed
    /// task list).
    note: Option<&'static str>,
}

/// The note of a `--resume` whose joblog has successful lines that match no task by Seq
/// and Command.
pub const LIST_CHANGED: &str =
    "the task list changed since that run; tasks are matched by their command";

impl Prepared {
    /// Something about the run worth a line before it starts, if anything.
    pub fn note(&self) -> Option<&'static str> {
        self.note
    }

    /// How its processes are cleaned up should poolscope die.
    pub fn cleanup(&self) -> &CleanupInfo {
        &self.run.info.cleanup
    }

    /// A sender of controls (Stop, Kill) for this run, e.g. for a signal handler.
    pub fn controller(&self) -> Sender<Control> {
        self.controls.clone()
    }

    /// Run on a thread of its own; the events arrive on the handle.
    pub fn start(self) -> Result<RunHandle, RunError> {
        let (event_tx, events) = unbounded();
        let waker = self.waker;
        let run = self.run;
        let thread = std::thread::Builder::new()
            .name("poolscope-run".to_string())
            .spawn(move || {
                let mut send = |event| {
                    let _ = event_tx.send(event);
                    if let Some(Waker(wake)) = &waker {
                        wake();
                    }
                };
                let recorder = Arc::clone(&run.recorder);
                let ran = panics::catch(|| run.go(&mut send));
                if ran.is_err() {
                    // What was recorded up to the panic stays: the joblog's lines.
                    recorder.lock().unwrap_or_else(|e| e.into_inner()).flush();
                }
                ran
            })
            .map_err(RunError::Thread)?;
        Ok(RunHandle {
            events,
            run_dir: self.run_dir,
            controls: self.controls,
            thread: Some(thread),
        })
    }
}

/// Start the guardian that ends this process's tasks should it die (once per process:
/// runs share it) by running `exe __guardian`, and say how it cleans up. The app calls
/// it as it opens a directory, so that its load report can say what a run will do.
pub fn start_guardian(exe: &Path) -> Result<CleanupInfo, RunError> {
    guard::start_guardian(exe).map_err(|source| RunError::Guardian {
        path: exe.to_path_buf(),
        source,
    })?;
    Ok(cleanup_info())
}

/// How the live guardian, if any, cleans up.
fn cleanup_info() -> CleanupInfo {
    match guard::cleanup() {
        Some(guard::Cleanup::Namespace) => CleanupInfo {
            pid_namespace: true,
            note: None,
        },
        Some(other) => CleanupInfo {
            pid_namespace: false,
            note: other.note(),
        },
        None => CleanupInfo::default(),
    }
}

/// Everything [`start`] does before it starts the run's thread.
pub fn prepare(
    dir: &TaskDir,
    config: PoolConfig,
    options: RunOptions,
) -> Result<Prepared, RunError> {
    let cleanup = match &options.guardian {
        Some(exe) => start_guardian(exe)?,
        None => cleanup_info(),
    };
    let previous = match config.order {
        Order::LongestFirst => history::previous_durations(&dir.root),
        Order::Listed => BTreeMap::new(),
    };
    let run_dir = match &options.run_dir {
        Some(run_dir) => rundir::create(run_dir)
            .map(|()| run_dir.clone())
            .map_err(|source| RunError::RunDir {
                path: run_dir.clone(),
                source,
            })?,
        None => {
            rundir::create_fresh(&dir.root, std::time::SystemTime::now()).map_err(|source| {
                RunError::RunDir {
                    path: rundir::runs_folder(&dir.root),
                    source,
                }
            })?
        }
    };
    // Before the joblog is read or touched: a live run may be writing it.
    let lock = lock::acquire(&run_dir).map_err(|source| RunError::Busy {
        path: run_dir.clone(),
        source,
    })?;
    let joblog_path = run_dir.join(joblog::FILE);
    let finished = if options.resume {
        resume::finished(&joblog_path, &dir.tasks).map_err(|source| RunError::Joblog {
            path: joblog_path.clone(),
            source,
        })?
    } else {
        Default::default()
    };
    let note = finished.list_changed.then_some(LIST_CHANGED);
    let done = finished.done;
    let tasks: Arc<Vec<Arc<Task>>> = Arc::new(dir.tasks.clone());
    let recorder =
        Recorder::open(&run_dir, Arc::clone(&tasks)).map_err(|source| RunError::RunDir {
            path: run_dir.clone(),
            source,
        })?;
    let queue = start_order(&tasks, &done, config.order, &previous);
    // No more slots than tasks to run: nothing is sized by a count it cannot use.
    let config = PoolConfig {
        workers: config.workers.clamp(1, queue.len().max(1)),
        ..config
    };
    let clock = RunClock::start();
    let cores = monitor::core_count();
    let info = Arc::new(RunInfo {
        name: dir.name.clone(),
        run_dir: run_dir.clone(),
        config: config.clone(),
        cores,
        started_at: clock.started_at(),
        tasks: tasks.iter().map(|t| TaskInfo::of(t)).collect(),
        cleanup,
    });
    let (controls, control_rx) = unbounded();
    let ctx = Arc::new(RunContext {
        run_dir: Arc::from(run_dir.as_path()),
        marker: RunMarker::new(),
        output_cap: options.output_cap,
        clock,
        running: Default::default(),
    });
    // Looked up for persistent workers only: `/proc/self/exe` is slow to read here, and a
    // run of plain processes must not wait for it before its first task.
    let worker = dir.worker.clone().map(|spec| {
        let poolscope = options
            .guardian
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("poolscope"));
        (spec, poolscope)
    });
    let run = Run {
        info,
        worker,
        tasks,
        queue,
        done: done.into_iter().collect(),
        config,
        ctx,
        recorder: Arc::new(Mutex::new(recorder)),
        lock,
        final_sweep: options.final_sweep,
        controls: control_rx,
    };
    Ok(Prepared {
        run,
        controls,
        waker: options.waker,
        run_dir,
        note,
    })
}

/// Indexes of the tasks to run, in the order they start.
fn start_order(
    tasks: &[Arc<Task>],
    done: &std::collections::BTreeSet<usize>,
    order: Order,
    previous: &BTreeMap<String, Duration>,
) -> Vec<usize> {
    let mut queue: Vec<usize> = (0..tasks.len())
        .filter(|&i| !done.contains(&tasks[i].seq))
        .collect();
    if order == Order::LongestFirst {
        // Unknown durations first: they may be the longest. The sort is stable.
        queue.sort_by_key(|&i| {
            std::cmp::Reverse(
                previous
                    .get(&tasks[i].name)
                    .copied()
                    .unwrap_or(Duration::MAX),
            )
        });
    }
    queue
}

struct Run {
    info: Arc<RunInfo>,
    /// `[worker]`: run the tasks as items on persistent workers, with the `poolscope`
    /// executable that serves built-in kernels.
    worker: Option<(WorkerSpec, PathBuf)>,
    tasks: Arc<Vec<Arc<Task>>>,
    queue: Vec<usize>,
    done: Vec<usize>,
    config: PoolConfig,
    ctx: Arc<RunContext>,
    recorder: Arc<Mutex<Recorder>>,
    /// Held until the records are written.
    lock: lock::RunLock,
    final_sweep: bool,
    controls: Receiver<Control>,
}

impl Run {
    /// Run to the end on this thread, handing every event to `sink`.
    fn go(self, sink: &mut dyn FnMut(Event)) {
        let recorder = Arc::clone(&self.recorder);
        let mut emit = |event: Event| {
            recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(&event);
            sink(event);
        };
        emit(Event::RunStarted(Arc::clone(&self.info)));
        for &seq in &self.done {
            emit(Event::TaskSkipped {
                seq,
                reason: SkipReason::AlreadyDone,
            });
        }
        let (reply_tx, replies) = unbounded();
        let (sample_tx, samples) = unbounded();
        let watched: Watched = Arc::default();
        let monitor = Monitor::spawn(Arc::clone(&watched), sample_tx, self.ctx.clock).ok();
        let inputs = Inputs {
            replies,
            controls: self.controls,
            samples,
        };
        let pool = Pool {
            tasks: self.tasks,
            queue: self.queue,
            cores: self.info.cores,
            inputs,
            emit: Box::new(&mut emit),
            clock: self.ctx.clock,
            watched,
            recorder: Arc::clone(&self.recorder),
            config: self.config,
        };
        let interrupted = match self.worker {
            Some((spec, poolscope)) => {
                let ctx = WorkerContext::new(
                    Arc::clone(&self.ctx),
                    spec,
                    poolscope,
                    pool.config.max_tasks_per_worker,
                    pool.config.timeout,
                );
                pool.run(WorkerLauncher::new(Arc::new(ctx), reply_tx))
            }
            None => pool.run(ProcessLauncher::new(Arc::clone(&self.ctx), reply_tx)),
        };
        drop(monitor);
        let finished = Event::RunFinished {
            at: self.ctx.clock.now(),
            interrupted,
            self_cpu: self_cpu_time(),
        };
        let mut recorder = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        recorder.observe(&finished);
        let records = recorder.finish();
        drop(recorder);
        // Free for a `--resume` as soon as the faces hear that the run is over.
        drop(self.lock);
        for problem in records.problems {
            sink(Event::RecordProblem(problem));
        }
        if let Some(summary) = records.summary {
            sink(Event::Summary(summary));
        }
        sink(finished);
        // Last, what escaped the tasks' process groups and still lives.
        if self.final_sweep || !guard::guardian_running() {
            guard::sweep(self.ctx.marker.prefix(), Duration::from_millis(500));
        }
    }
}

/// What the scheduler needs besides a launcher.
struct Pool<'a> {
    tasks: Arc<Vec<Arc<Task>>>,
    queue: Vec<usize>,
    config: PoolConfig,
    cores: usize,
    inputs: Inputs,
    emit: Box<dyn FnMut(Event) + 'a>,
    clock: RunClock,
    watched: Watched,
    recorder: Arc<Mutex<Recorder>>,
}

impl Pool<'_> {
    /// Run the pool on `launcher` to the end; whether it was interrupted. The launcher is
    /// dropped before this returns (persistent workers are asked to exit).
    fn run<L: Launcher>(self, launcher: L) -> bool {
        let recorder = self.recorder;
        let mut guardian_checked = Instant::now();
        let flush = move || {
            recorder.lock().unwrap_or_else(|e| e.into_inner()).flush();
            // Samples wake the scheduler several times a second, so this runs that often.
            if guardian_checked.elapsed() >= guard::CHECK_EVERY {
                guardian_checked = Instant::now();
                guard::keep_guardian();
            }
        };
        Scheduler::new(
            self.tasks,
            self.queue,
            self.config,
            self.cores,
            launcher,
            self.inputs,
            self.emit,
            self.clock,
        )
        .watch(self.watched)
        .on_idle(Box::new(flush))
        .run()
    }
}

/// CPU time (user + system) of this process's own threads, children not included.
pub fn self_cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// Run `dir` to the end on this thread, folding every event into `on_event`.
pub fn run_to_end(
    dir: &TaskDir,
    config: PoolConfig,
    options: RunOptions,
    mut on_event: impl FnMut(&Event),
) -> Result<(), RunError> {
    let handle = start(dir, config, options)?;
    for event in handle.events.iter() {
        on_event(&event);
        if matches!(event, Event::RunFinished { .. }) {
            break;
        }
    }
    handle.join().map_err(RunError::Panicked)
}

/// The run directory a `--resume` of `root` continues: its latest run.
pub fn latest_run(root: &Path) -> Option<PathBuf> {
    rundir::latest_run(root)
}
