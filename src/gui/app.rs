//! The app: a loaded task directory, its pool settings, and its runs, drawn as panels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::{Key, Modifiers, Ui};

use super::bench_panel::BenchPanel;
use super::errors::ErrorsView;
use super::output_view::OutputView;
use super::pool_form::PoolForm;
use super::session::Session;
use super::settings::Settings;
use super::timeline::TimelineView;
use super::{Command, cores, load_report, status, workers};
use crate::config::PoolSettings;
use crate::engine::Waker;
use crate::event::Control;
use crate::state::RunState;

/// Time between redraws while a run is live.
const LIVE_FRAME: std::time::Duration = std::time::Duration::from_millis(100);

/// Time between redraws while a benchmark is timing runs.
const BENCH_FRAME: std::time::Duration = std::time::Duration::from_millis(500);

/// A waker that redraws the window at most once per `frame`, however fast events come.
fn live_waker(ctx: egui::Context, frame: std::time::Duration) -> Waker {
    Waker(Arc::new(move || ctx.request_repaint_after(frame)))
}

/// The central tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Timeline,
    Cores,
    Errors,
    Benchmark,
}

/// The whole app, independent of the window it is drawn in (tests draw it headless).
pub struct PoolscopeApp {
    pub settings: Settings,
    session: Option<Session>,
    form: PoolForm,
    pub tab: Tab,
    timeline: TimelineView,
    errors: ErrorsView,
    pub bench: BenchPanel,
    output: Option<OutputView>,
    picker: Option<egui_file::FileDialog>,
    /// Set on the first frame: wakes the window when a run has news.
    ctx: Option<egui::Context>,
    /// The last thing that went wrong, shown until the next command.
    message: Option<String>,
}

impl PoolscopeApp {
    /// The app with saved `settings`, opening `dir` if given.
    pub fn new(settings: Settings, dir: Option<&Path>) -> Self {
        let mut app = PoolscopeApp {
            settings,
            session: None,
            form: PoolForm::from_settings(&PoolSettings::default()),
            tab: Tab::Timeline,
            timeline: TimelineView::default(),
            errors: ErrorsView::default(),
            bench: BenchPanel::default(),
            output: None,
            picker: None,
            ctx: None,
            message: None,
        };
        if let Some(dir) = dir {
            app.open(dir);
        }
        app
    }

    /// Load the task directory at `path` (a load error is shown in place).
    pub fn open(&mut self, path: &Path) {
        if let Some(old) = &mut self.session {
            old.shutdown();
        }
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let session = Session::open(&path);
        let mut workers = None;
        if let Ok(dir) = &session.loaded {
            self.form = PoolForm::from_settings(&dir.pool);
            self.settings.remember(&path);
            workers = dir.pool.workers;
        }
        self.session = Some(session);
        self.output = None;
        self.message = None;
        self.timeline = TimelineView::default();
        self.bench.reset(workers);
    }

    /// Show a run that is over, from its events (the open directory's, or `path`'s).
    pub fn show_finished_run(&mut self, path: &Path, events: &[crate::event::Event]) {
        if self.session.is_none() {
            self.open(path);
        }
        if let Some(s) = &mut self.session {
            s.add_finished(events);
        }
    }

    /// Whether the timeline keeps the live edge in view (until a zoom or a pan).
    pub fn follows_live_edge(&self) -> bool {
        self.timeline.follow
    }

    /// The run on display.
    pub fn current_state(&self) -> Option<&RunState> {
        self.session.as_ref()?.current().map(|r| &r.state)
    }

    /// Is a run or a benchmark live?
    pub fn is_running(&self) -> bool {
        self.bench.is_running() || self.session.as_ref().is_some_and(Session::is_running)
    }

    /// The pool form (tests set values through the UI; this reads them back).
    pub fn form(&self) -> &PoolForm {
        &self.form
    }

    /// Kill live runs and wait for their records (on window close). A benchmark stops
    /// after its current run, whose tasks the guardian ends with this process.
    pub fn shutdown(&mut self) {
        self.bench.stop();
        if let Some(s) = &mut self.session {
            s.shutdown();
        }
    }

    /// Fold events that arrived since the last frame.
    pub fn drain(&mut self) {
        if let Some(s) = &mut self.session {
            s.drain();
            self.bench.drain(s);
            if let Some(panic) = s.runs.iter_mut().find_map(|r| r.internal_error.take()) {
                self.message = Some(format!("internal error: {panic}; the run stopped there"));
            }
        }
    }

    /// Carry out a command from a panel or a shortcut.
    pub fn apply(&mut self, command: Command) {
        self.message = None;
        match command {
            Command::Open(path) => self.open(&path),
            Command::Run => self.start_run(),
            Command::Stop | Command::Kill => {
                self.bench.stop();
                let control = if command == Command::Stop {
                    Control::Stop
                } else {
                    Control::Kill
                };
                if let Some(run) = self.session.as_ref().and_then(Session::current) {
                    run.control(control);
                }
            }
            Command::OpenOutput(key, stream) => self.output = Some(OutputView::new(key, stream)),
            Command::SelectRun(i) => {
                if let Some(s) = &mut self.session {
                    s.selected = Some(i);
                    self.output = None;
                }
            }
            Command::PickFolder => {
                let start = self.session.as_ref().map(|s| s.path.clone());
                let mut picker =
                    egui_file::FileDialog::select_folder().title("Open a task directory");
                if let Some(start) = start {
                    picker = picker.initial_path(start);
                }
                picker.open();
                self.picker = Some(picker);
            }
            Command::Benchmark => {
                let config = self.form.config();
                match (&self.session, config) {
                    (Some(session), Ok(config)) => {
                        // Fewer redraws while timing: drawing takes CPU from the tasks.
                        let waker = self.waker(BENCH_FRAME);
                        self.bench.start(session, config, waker);
                    }
                    (_, Err(e)) => self.message = Some(e),
                    (None, _) => {}
                }
            }
            Command::Reload => {
                if let Some(s) = &mut self.session {
                    s.reload();
                    if let Ok(dir) = &s.loaded {
                        self.form = PoolForm::from_settings(&dir.pool);
                    }
                }
            }
        }
    }

    fn waker(&self, frame: std::time::Duration) -> Option<Waker> {
        self.ctx.clone().map(|ctx| live_waker(ctx, frame))
    }

    fn start_run(&mut self) {
        let Some(session) = &mut self.session else {
            self.message = Some("Open a task directory first (Ctrl+O).".to_string());
            return;
        };
        if session.is_running() {
            return;
        }
        if self.bench.is_running() {
            self.message = Some(
                "A benchmark is still running (it stops after its current run); wait for it, or press Stop."
                    .to_string(),
            );
            return;
        }
        let waker = self.ctx.clone().map(|ctx| live_waker(ctx, LIVE_FRAME));
        session.reload();
        let started = self
            .form
            .config()
            .and_then(|config| session.start(config, waker));
        if let Err(e) = started {
            self.message = Some(e);
        }
        self.output = None;
        // A new run is watched from its start, whatever the last one's zoom.
        self.timeline = TimelineView::default();
    }

    /// Draw the app into `ui` (the whole window).
    pub fn show(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if self.ctx.is_none() {
            self.ctx = Some(ctx.clone());
        }
        self.drain();
        let mut commands = shortcuts(&ctx);
        commands.extend(dropped_folder(&ctx).map(Command::Open));
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui, &mut commands));
        egui::Panel::bottom("status").show(ui, |ui| {
            if let Some(m) = &self.message {
                ui.colored_label(ui.visuals().error_fg_color, m);
            }
            status::ui(ui, self.current_state());
        });
        egui::Panel::left("setup")
            .resizable(true)
            .default_size(360.0)
            .show(ui, |ui| self.setup(ui, &mut commands));
        egui::CentralPanel::default().show(ui, |ui| self.central(ui, &mut commands));
        if let (Some(view), Some(state)) = (
            &mut self.output,
            self.session
                .as_ref()
                .and_then(|s| s.current())
                .map(|r| &r.state),
        ) && !view.show(&ctx, state)
        {
            self.output = None;
        }
        if let Some(picker) = &mut self.picker
            && picker.show(&ctx).selected()
        {
            if let Some(path) = picker.path() {
                commands.push(Command::Open(path.to_path_buf()));
            }
            self.picker = None;
        }
        for command in commands {
            self.apply(command);
        }
    }

    fn top_bar(&mut self, ui: &mut Ui, commands: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            ui.strong("poolscope");
            if ui
                .button("Open…")
                .on_hover_text("Open a task directory (Ctrl+O)")
                .clicked()
            {
                commands.push(Command::PickFolder);
            }
            let label = ui.label("Recent:");
            egui::ComboBox::from_id_salt("recent")
                .selected_text(match self.settings.recent.len() {
                    1 => "1 folder".to_string(),
                    n => format!("{n} folders"),
                })
                .show_ui(ui, |ui| {
                    for dir in &self.settings.recent {
                        if ui
                            .selectable_label(false, dir.display().to_string())
                            .clicked()
                        {
                            commands.push(Command::Open(dir.clone()));
                        }
                    }
                })
                .response
                .labelled_by(label.id);
            if let Some(s) = &self.session {
                ui.separator();
                ui.label(s.path.display().to_string());
                if ui.small_button("Reload").clicked() {
                    commands.push(Command::Reload);
                }
                if !s.runs.is_empty() {
                    ui.separator();
                    let label = ui.label("Run:");
                    let title = |i: usize| {
                        let run = &s.runs[i];
                        let live = if run.is_live() { " (running)" } else { "" };
                        match &run.label {
                            Some(l) => format!("#{} {l}{live}", run.number),
                            None => format!("#{}{live}", run.number),
                        }
                    };
                    let selected = s.selected.map(title).unwrap_or_default();
                    egui::ComboBox::from_id_salt("runs")
                        .selected_text(selected)
                        .show_ui(ui, |ui| {
                            for i in (0..s.runs.len()).rev() {
                                if ui
                                    .selectable_label(s.selected == Some(i), title(i))
                                    .clicked()
                                {
                                    commands.push(Command::SelectRun(i));
                                }
                            }
                        })
                        .response
                        .labelled_by(label.id);
                }
            }
        });
    }

    fn setup(&mut self, ui: &mut Ui, commands: &mut Vec<Command>) {
        egui::ScrollArea::vertical().id_salt("setup").show(ui, |ui| {
            let Some(session) = &self.session else {
                ui.heading("No task directory");
                ui.label("Open one with Open… (Ctrl+O), drop a folder on the window, or pick a recent one.");
                return;
            };
            // Before the first run the load report has the main area (but in the Benchmark
            // tab); then it moves here.
            if !session.runs.is_empty() || self.tab == Tab::Benchmark {
                load_report::ui(ui, session, 220.0);
                ui.separator();
            }
            ui.heading("Pool");
            let can_run = session.loaded.is_ok();
            let running = session.is_running();
            if let Some(c) = self.form.ui(ui, can_run, running) {
                commands.push(c);
            }
        });
    }

    fn central(&mut self, ui: &mut Ui, commands: &mut Vec<Command>) {
        let Some(session) = &self.session else {
            ui.centered_and_justified(|ui| {
                ui.weak("Open a task directory (Ctrl+O) to start.");
            });
            return;
        };
        let run = session.current();
        let failures = run.map_or(0, |r| {
            r.state
                .attempts
                .iter()
                .filter(|a| a.outcome.is_failure())
                .count()
        });
        // The tabs first, so that they stay in place when a run starts.
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, Tab::Timeline, "Timeline");
            ui.selectable_value(&mut self.tab, Tab::Cores, "Cores");
            ui.selectable_value(&mut self.tab, Tab::Errors, format!("Errors ({failures})"));
            ui.selectable_value(&mut self.tab, Tab::Benchmark, "Benchmark");
        });
        if let Some(run) = run
            && self.tab != Tab::Benchmark
        {
            ui.heading("Workers");
            let rows = run.state.slots.len() as f32 + 1.0;
            let height = (rows * 24.0 + 8.0).min(ui.available_height() * 0.4);
            ui.allocate_ui(egui::vec2(ui.available_width(), height), |ui| {
                workers::ui(ui, &run.state);
            });
            ui.separator();
        }
        let command = match (self.tab, run) {
            (Tab::Benchmark, _) => {
                let can_run = session.loaded.is_ok() && !session.is_running();
                if self.bench.ui(ui, can_run) {
                    commands.push(Command::Benchmark);
                }
                None
            }
            (_, None) => {
                ui.weak("Press Run (F5) to start the pool; workers, timeline and cores show here.");
                ui.separator();
                // Room under the task list for the ignored files' line and the notes.
                let tasks_height = (ui.available_height() - 160.0).max(220.0);
                egui::ScrollArea::vertical()
                    .id_salt("load report")
                    .auto_shrink([false, false])
                    .show(ui, |ui| load_report::ui(ui, session, tasks_height));
                None
            }
            (Tab::Timeline, Some(run)) => {
                self.timeline.ui(ui, run, &mut self.settings.per_core_lanes)
            }
            (Tab::Cores, Some(run)) => {
                cores::ui(ui, run);
                None
            }
            (Tab::Errors, Some(run)) => self.errors.ui(ui, &run.state),
        };
        commands.extend(command);
    }
}

/// Ctrl+O open, F5 run, Esc stop.
fn shortcuts(ctx: &egui::Context) -> Vec<Command> {
    let mut commands = Vec::new();
    ctx.input_mut(|i| {
        if i.consume_key(Modifiers::COMMAND, Key::O) {
            commands.push(Command::PickFolder);
        }
        if i.consume_key(Modifiers::NONE, Key::F5) {
            commands.push(Command::Run);
        }
        if i.consume_key(Modifiers::NONE, Key::Escape) {
            commands.push(Command::Stop);
        }
    });
    commands
}

/// A folder dropped on the window.
fn dropped_folder(ctx: &egui::Context) -> Option<PathBuf> {
    ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .find(|p| p.is_dir())
    })
}
