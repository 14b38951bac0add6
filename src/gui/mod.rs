//! The desktop app (cargo feature `gui`): eframe + egui + egui_plot.
//!
//! [`PoolscopeApp`] draws everything into an `egui::Ui` and knows nothing of the window,
//! so tests drive it headless with `egui_kittest`; [`run`] puts it in a native window,
//! saves its settings between launches, and takes screenshots for `--screenshot`.

mod app;
mod bars;
mod bench_panel;
mod cores;
mod errors;
mod lanes;
mod load_report;
mod output_view;
mod pool_form;
mod screenshot;
mod session;
mod settings;
mod status;
mod timeline;
mod workers;

use std::path::PathBuf;

pub use app::{PoolscopeApp, Tab};
pub use bars::LaneBars;
pub use lanes::{Bar, BarKind};
pub use settings::Settings;

use crate::event::{AttemptKey, Stream};

/// What a panel or a shortcut asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Open(PathBuf),
    PickFolder,
    Reload,
    Run,
    /// Run the Benchmark panel's worker counts.
    Benchmark,
    Stop,
    Kill,
    /// Show an attempt's output, starting on this stream.
    OpenOutput(AttemptKey, Stream),
    SelectRun(usize),
}

/// How the window is launched.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Task directory to open.
    pub dir: Option<PathBuf>,
    /// Save a screenshot of the window here, then exit.
    pub screenshot: Option<PathBuf>,
    /// Start running the tasks at once (with a screenshot: run them to the end first).
    pub run: bool,
}

/// Open the window and run the app until it is closed.
pub use screenshot::check_path as check_screenshot_path;

/// Why the app ended badly.
#[derive(Debug)]
pub enum Failed {
    /// The window could not open.
    Window(String),
    /// `--screenshot` could not be saved.
    Screenshot(String),
}

pub fn run(launch: Launch) -> Result<(), Failed> {
    let saved = screenshot::Saved::default();
    let plan_saved = std::sync::Arc::clone(&saved);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("poolscope")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([720.0, 480.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "poolscope",
        options,
        Box::new(move |cc| Ok(Box::new(Window::new(cc, launch, plan_saved)))),
    )
    .map_err(|e| {
        Failed::Window(format!(
            "cannot open the window ({e}); is there a display (DISPLAY or WAYLAND_DISPLAY)? Without one, use `poolscope run DIR`"
        ))
    })?;
    match saved.lock().map(|s| s.clone()) {
        Ok(Some(Err(e))) => Err(Failed::Screenshot(e)),
        _ => Ok(()),
    }
}

/// The app in a native window.
struct Window {
    app: PoolscopeApp,
    screenshot: Option<screenshot::Plan>,
}

impl Window {
    fn new(cc: &eframe::CreationContext<'_>, launch: Launch, saved: screenshot::Saved) -> Self {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let mut app = PoolscopeApp::new(settings, launch.dir.as_deref());
        let screenshot = launch
            .screenshot
            .map(|path| screenshot::Plan::new(path, launch.run, saved));
        if launch.run {
            app.apply(Command::Run);
        }
        close_on_signal(&cc.egui_ctx);
        Window { app, screenshot }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP close the window as its close button does: running tasks are
/// killed and their records kept. A second signal exits at once (the guardian cleans up).
fn close_on_signal(ctx: &egui::Context) {
    let ctx = ctx.clone();
    let signals = std::sync::atomic::AtomicU32::new(0);
    let _ = ctrlc::set_handler(move || {
        if signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            std::process::exit(i32::from(crate::cli::exit::INTERRUPTED));
        }
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        ctx.request_repaint();
    });
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.show(ui);
        if let Some(plan) = &mut self.screenshot {
            plan.step(ui.ctx(), self.app.is_running());
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.app.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Closing the window ends its runs; what they recorded is kept.
        self.app.shutdown();
    }
}
