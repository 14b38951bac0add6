//! A loaded task directory and the runs made of it in this session.

use std::path::{Path, PathBuf};

use crate::config::PoolConfig;
use crate::engine::{self, RunHandle, RunOptions, Waker};
use crate::event::{Control, Event};
use crate::state::RunState;
use crate::taskdir::{self, TaskDir};

use super::lanes::Lanes;

/// One run: its model, folded from its events, and its engine while it is live.
pub struct RunView {
    /// 1-based, in the order the runs started.
    pub number: usize,
    pub state: RunState,
    /// Per-lane bars for the timeline, kept in step with `state`.
    pub lanes: Lanes,
    handle: Option<RunHandle>,
    /// A benchmark's run, fed its events by the benchmark (see [`Session::feed`]).
    pub label: Option<String>,
    /// The panic that stopped the run's engine, until the app shows it.
    pub internal_error: Option<String>,
}

impl RunView {
    /// Is the engine still running it?
    pub fn is_live(&self) -> bool {
        self.handle.is_some()
            || (self.label.is_some() && self.state.info.is_some() && self.state.end.is_none())
    }

    fn apply(&mut self, event: &Event) {
        self.state.apply(event);
        self.lanes.observe(event);
    }

    /// Fold every waiting event; true if anything changed.
    pub fn drain(&mut self) -> bool {
        let Some(handle) = &self.handle else {
            return false;
        };
        let mut changed = false;
        let mut finished = false;
        loop {
            match handle.events.try_recv() {
                Ok(event) => {
                    self.state.apply(&event);
                    self.lanes.observe(&event);
                    changed = true;
                    if matches!(event, Event::RunFinished { .. }) {
                        finished = true;
                        break;
                    }
                }
                // Its thread ended without `RunFinished`: it panicked.
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    finished = true;
                    changed = true;
                    break;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
            }
        }
        if finished && let Some(handle) = self.handle.take() {
            self.internal_error = handle.join().err();
        }
        changed
    }

    pub fn control(&self, control: Control) {
        if let Some(handle) = &self.handle {
            handle.control(control);
        }
    }

    /// Kill the run and wait until its records are written (TERM, then KILL after 2 s).
    pub fn kill_and_wait(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        handle.control(Control::Kill);
        for event in handle.events.iter() {
            self.state.apply(&event);
            self.lanes.observe(&event);
            if matches!(event, Event::RunFinished { .. }) {
                break;
            }
        }
        self.internal_error = handle.join().err();
    }
}

/// A task directory as the app has it.
pub struct Session {
    pub path: PathBuf,
    /// The load report, or the one-sentence reason it could not be loaded.
    pub loaded: Result<TaskDir, String>,
    /// The sentence saying that tasks will not run in a PID namespace, and what that
    /// risks; `None` when they will.
    pub cleanup_note: Option<String>,
    pub runs: Vec<RunView>,
    /// Index into `runs` of the run on display.
    pub selected: Option<usize>,
}

impl Session {
    /// Load the task directory at `path` (errors are kept, to be shown in place).
    pub fn open(path: &Path) -> Session {
        Session {
            path: path.to_path_buf(),
            loaded: taskdir::load(path).map_err(|e| e.to_string()),
            // The guardian that the runs will share, started now so that the load report
            // can say how the tasks will be cleaned up. Failing to start is the run's error.
            cleanup_note: std::env::current_exe()
                .ok()
                .and_then(|exe| engine::start_guardian(&exe).ok())
                .and_then(|cleanup| cleanup.note),
            runs: Vec::new(),
            selected: None,
        }
    }

    /// Load the directory again, keeping the runs made so far.
    pub fn reload(&mut self) {
        self.loaded = taskdir::load(&self.path).map_err(|e| e.to_string());
    }

    /// The run on display.
    pub fn current(&self) -> Option<&RunView> {
        self.selected.and_then(|i| self.runs.get(i))
    }

    /// Is any run of this directory live?
    pub fn is_running(&self) -> bool {
        self.runs.iter().any(RunView::is_live)
    }

    /// Add a run that is over, from its recorded events; it becomes the run on display.
    pub fn add_finished(&mut self, events: &[Event]) {
        let mut run = RunView {
            number: self.runs.len() + 1,
            state: RunState::new(),
            lanes: Lanes::default(),
            handle: None,
            label: None,
            internal_error: None,
        };
        for event in events {
            run.apply(event);
        }
        self.runs.push(run);
        self.selected = Some(self.runs.len() - 1);
    }

    /// Start a run with `config`; it becomes the run on display.
    pub fn start(&mut self, config: PoolConfig, waker: Option<Waker>) -> Result<(), String> {
        let dir = self.loaded.as_ref().map_err(Clone::clone)?;
        let mut options = RunOptions::fresh();
        options.waker = waker;
        let handle = engine::start(dir, config, options).map_err(|e| e.to_string())?;
        self.runs.push(RunView {
            number: self.runs.len() + 1,
            state: RunState::new(),
            lanes: Lanes::default(),
            handle: Some(handle),
            label: None,
            internal_error: None,
        });
        self.selected = Some(self.runs.len() - 1);
        Ok(())
    }

    /// A new run fed by a benchmark, labelled e.g. `2 workers, run 1/3`; it goes on display.
    pub fn add_fed(&mut self, label: String) {
        self.runs.push(RunView {
            number: self.runs.len() + 1,
            state: RunState::new(),
            lanes: Lanes::default(),
            handle: None,
            label: Some(label),
            internal_error: None,
        });
        self.selected = Some(self.runs.len() - 1);
    }

    /// Give the newest run an event from the benchmark feeding it.
    pub fn feed(&mut self, event: &Event) {
        if let Some(run) = self.runs.last_mut() {
            run.apply(event);
        }
    }

    /// Fold the waiting events of every live run; true if anything changed.
    pub fn drain(&mut self) -> bool {
        let mut changed = false;
        for run in &mut self.runs {
            changed |= run.drain();
        }
        changed
    }

    /// Kill every live run and wait for its records.
    pub fn shutdown(&mut self) {
        for run in &mut self.runs {
            run.kill_and_wait();
        }
    }
}
