//! The Benchmark panel: choose worker counts and repetitions, run them (each run shows
//! live in the timeline and cores views, as a run of its own), then wall time per setting
//! with its spread, speed-up against the ideal, and the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use egui::Ui;
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints, Points};

use super::session::Session;
use crate::bench::{self, Plan, Progress, Report, export};
use crate::config::PoolConfig;
use crate::engine::Waker;
use crate::output::DEFAULT_FILE_CAP;
use crate::record::rundir;

/// What the benchmark thread sends.
enum JobMsg {
    Progress(Progress),
    Finished(Result<Report, String>),
}

struct Job {
    messages: Receiver<JobMsg>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Started for a folder no longer open: its runs and results are not shown.
    discard: bool,
    /// The run going on, as `4 workers, run 2 of 3`, and how many runs have started.
    now: Option<String>,
    started: usize,
    /// Runs in all, warm-ups included.
    planned: usize,
}

/// State of the Benchmark panel.
pub struct BenchPanel {
    /// Worker counts as typed: `1,2,4,8` or `1..=8`.
    pub workers: String,
    pub runs: u32,
    pub warmup: u32,
    job: Option<Job>,
    pub report: Option<Report>,
    error: Option<String>,
}

impl Default for BenchPanel {
    fn default() -> Self {
        BenchPanel {
            workers: default_workers(None),
            runs: 3,
            warmup: 0,
            job: None,
            report: None,
            error: None,
        }
    }
}

/// The worker counts first offered, as [`bench::default_workers`] gives them.
pub fn default_workers(manifest: Option<usize>) -> String {
    let counts: Vec<String> = bench::default_workers(manifest)
        .iter()
        .map(usize::to_string)
        .collect();
    counts.join(",")
}

impl BenchPanel {
    /// Start over for a newly opened folder whose manifest asks for `workers`: its own
    /// default worker counts, no results. A benchmark still going on for the folder
    /// before stops after its current run, unseen.
    pub fn reset(&mut self, workers: Option<usize>) {
        self.stop();
        if let Some(job) = &mut self.job {
            job.discard = true;
        }
        self.workers = default_workers(workers);
        self.report = None;
        self.error = None;
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Start benchmarking `session`'s directory with `config` (its worker count ignored).
    pub fn start(&mut self, session: &Session, config: PoolConfig, waker: Option<Waker>) {
        self.error = None;
        let workers = match bench::parse_workers(&self.workers) {
            Ok(w) => w,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let Ok(dir) = session.loaded.clone() else {
            self.error = Some("this directory cannot run; see its load report".to_string());
            return;
        };
        let stamp = rundir::stamp(std::time::SystemTime::now());
        let out = dir.root.join(".poolscope").join("bench").join(stamp);
        let plan = Plan {
            workers,
            runs: self.runs.max(1) as usize,
            warmup: self.warmup as usize,
            config,
            out,
            output_cap: DEFAULT_FILE_CAP,
            guardian: std::env::current_exe().ok(),
        };
        let planned = plan.workers.len() * (plan.runs + plan.warmup);
        let (tx, messages) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let wake = waker.clone();
        let thread = std::thread::Builder::new()
            .name("poolscope-bench".to_string())
            .spawn(move || {
                let result = bench::run(&dir, &plan, waker, Some(&stop_flag), |p| {
                    let _ = tx.send(JobMsg::Progress(p));
                })
                .map_err(|e| e.to_string());
                if let Ok(report) = &result
                    && let Ok(json) =
                        serde_json::to_string_pretty(&export::hyperfine_json(report, &dir.root))
                {
                    let _ = std::fs::write(plan.out.join("bench.json"), json);
                }
                let _ = tx.send(JobMsg::Finished(result));
                if let Some(Waker(wake)) = &wake {
                    wake();
                }
            });
        match thread {
            Ok(thread) => {
                self.report = None;
                self.job = Some(Job {
                    messages,
                    stop,
                    thread: Some(thread),
                    discard: false,
                    now: None,
                    started: 0,
                    planned,
                });
            }
            Err(e) => self.error = Some(format!("cannot start the benchmark: {e}")),
        }
    }

    /// Fold what the benchmark reported since the last frame into `session`.
    pub fn drain(&mut self, session: &mut Session) {
        let Some(job) = &mut self.job else { return };
        let mut finished = None;
        while let Ok(msg) = job.messages.try_recv() {
            if job.discard && !matches!(msg, JobMsg::Finished(_)) {
                continue;
            }
            match msg {
                JobMsg::Progress(Progress::Starting {
                    workers,
                    run,
                    of,
                    warmup,
                }) => {
                    let kind = if warmup { "warm-up" } else { "run" };
                    session.add_fed(format!("{workers} workers, {kind} {run}/{of}"));
                    job.started += 1;
                    job.now = Some(format!("{workers} workers, {kind} {run} of {of}"));
                }
                JobMsg::Progress(Progress::Event(event)) => session.feed(&event),
                JobMsg::Progress(Progress::Done(_)) => {}
                JobMsg::Finished(result) => finished = Some(result),
            }
        }
        if let Some(result) = finished {
            if let Some(thread) = job.thread.take() {
                let _ = thread.join();
            }
            let discard = job.discard;
            self.job = None;
            match result {
                _ if discard => {}
                Ok(report) => self.report = Some(report),
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// Finish the run going on, then stop.
    pub fn stop(&self) {
        if let Some(job) = &self.job {
            job.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Draw the panel; true if the user asked to start.
    pub fn ui(&mut self, ui: &mut Ui, can_run: bool) -> bool {
        let mut start = false;
        ui.horizontal(|ui| {
            let label = ui.label("Worker counts");
            ui.add(egui::TextEdit::singleline(&mut self.workers).desired_width(110.0))
                .labelled_by(label.id)
                .on_hover_text("e.g. 1,2,4,8 or 1..=8; 1 is the serial run");
            let label = ui.label("Runs");
            ui.add(egui::DragValue::new(&mut self.runs).range(1..=100))
                .labelled_by(label.id);
            let label = ui.label("Warm-ups");
            ui.add(egui::DragValue::new(&mut self.warmup).range(0..=20))
                .labelled_by(label.id);
            if self.is_running() {
                if ui
                    .button("Stop benchmark")
                    .on_hover_text("Stop after the run going on")
                    .clicked()
                {
                    self.stop();
                }
                // No spinner: it would redraw the window every frame while timing runs.
                ui.label("running…");
            } else if ui
                .add_enabled(can_run, egui::Button::new("Run benchmark"))
                .clicked()
            {
                start = true;
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        match &self.report {
            Some(report) => show_report(ui, report),
            None if self.job.as_ref().is_some_and(|j| j.discard) => {
                ui.label("The benchmark of the folder opened before stops after its current run.");
            }
            None if self.is_running() => {
                if let Some(job) = &self.job
                    && let Some(now) = &job.now
                {
                    ui.label(format!(
                        "Now: {now} ({} of {} runs)",
                        job.started, job.planned
                    ));
                }
                ui.label("Each run shows live in the Timeline and Cores tabs; the results appear here when all runs are done.");
            }
            None => {
                ui.label("Runs the whole task set at each worker count (the other pool settings as set on the left), and compares wall times.");
            }
        }
        start
    }
}

fn show_report(ui: &mut Ui, report: &Report) {
    ui.label(export::serial_note(report));
    table(ui, report);
    let height = (ui.available_height() - 8.0).max(160.0) / 2.0;
    let most = report.settings.iter().map(|s| s.workers).max().unwrap_or(1) as f64;
    let reference = report
        .measured_serial
        .or(report.estimated_serial)
        .unwrap_or(0.0);
    chart("bench-wall", "wall time [s]", height, most).show(ui, |plot_ui| {
        let mut means = Vec::new();
        for s in &report.settings {
            let x = s.workers as f64;
            means.push([x, s.spread.mean]);
            plot_ui.line(
                Line::new(
                    "spread (min to max)",
                    PlotPoints::from(vec![[x, s.spread.min], [x, s.spread.max]]),
                )
                .width(2.0)
                .color(egui::Color32::GRAY),
            );
        }
        plot_ui.points(Points::new("mean", PlotPoints::from(means)).radius(4.0));
        let ideal: Vec<[f64; 2]> = report
            .settings
            .iter()
            .map(|s| [s.workers as f64, s.ideal])
            .collect();
        plot_ui.line(Line::new("ideal", PlotPoints::from(ideal)).style(LineStyle::dashed_loose()));
    });
    chart("bench-speedup", "speed-up", height, most).show(ui, |plot_ui| {
        let measured: Vec<[f64; 2]> = report
            .settings
            .iter()
            .filter_map(|s| Some([s.workers as f64, s.speedup?]))
            .collect();
        plot_ui.line(Line::new("measured", PlotPoints::from(measured.clone())));
        plot_ui.points(Points::new("measured points", PlotPoints::from(measured)).radius(4.0));
        let ideal: Vec<[f64; 2]> = report
            .settings
            .iter()
            .filter(|s| s.ideal > 0.0)
            .map(|s| [s.workers as f64, reference / s.ideal])
            .collect();
        plot_ui.line(Line::new("ideal", PlotPoints::from(ideal)).style(LineStyle::dashed_loose()));
    });
}

/// A chart over worker counts 0 to `most` + 1, starting at 0 on the y axis.
fn chart<'a>(id: &str, y_label: &str, height: f32, most: f64) -> Plot<'a> {
    Plot::new(id)
        .height(height)
        .legend(Legend::default())
        .include_y(0.0)
        .include_x(0.0)
        .include_x(most + 1.0)
        .x_axis_label("workers")
        .y_axis_label(y_label.to_string())
}

fn table(ui: &mut Ui, report: &Report) {
    let opt = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
    egui::Grid::new("bench-table")
        .striped(true)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            for h in [
                "Workers",
                "Mean ± σ [s]",
                "Median",
                "Min",
                "Max",
                "Speed-up",
                "Efficiency",
                "Karp–Flatt",
                "Ideal [s]",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for s in &report.settings {
                ui.label(s.workers.to_string());
                ui.label(format!("{:.3} ± {:.3}", s.spread.mean, s.spread.stddev));
                ui.label(format!("{:.3}", s.spread.median));
                ui.label(format!("{:.3}", s.spread.min));
                ui.label(format!("{:.3}", s.spread.max));
                ui.label(opt(s.speedup, 2));
                ui.label(opt(s.efficiency, 2));
                ui.label(opt(s.karp_flatt, 3));
                ui.label(format!("{:.3}", s.ideal));
                ui.end_row();
            }
        });
}
