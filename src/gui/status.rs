//! The status line: tasks done of total, failures, elapsed, ETA, and the run directory.

use egui::Ui;

use crate::human::seconds;
use crate::state::RunState;

pub fn ui(ui: &mut Ui, state: Option<&RunState>) {
    ui.horizontal(|ui| {
        let Some(state) = state else {
            ui.weak("No run yet: press Run (F5).");
            return;
        };
        let c = state.counts();
        ui.label(format!("{}/{} done", c.done() + c.skipped, c.total));
        let failures = c.failed + c.timed_out;
        if failures > 0 {
            ui.colored_label(ui.visuals().error_fg_color, format!("{failures} failed"));
        } else {
            ui.label("0 failed");
        }
        ui.separator();
        ui.label(format!("elapsed {}", seconds(state.elapsed())));
        match (state.end, state.eta()) {
            (Some(end), _) if end.interrupted => {
                ui.label("stopped");
            }
            (Some(_), _) => {
                if let Some(s) = state.speedup() {
                    ui.label(format!(
                        "speed-up {s:.2}× (summed task time {})",
                        seconds(state.task_time())
                    ));
                }
            }
            (None, Some(eta)) => {
                ui.label(format!("ETA {}", seconds(eta)));
            }
            (None, None) => {
                ui.label("ETA –");
            }
        }
        ui.separator();
        if let Some(info) = &state.info {
            ui.weak(format!("run directory: {}", info.run_dir.display()));
            if ui
                .small_button("Open")
                .on_hover_text("Open the run directory")
                .clicked()
            {
                open_folder(&info.run_dir);
            }
        }
    });
}

/// Open `dir` in the desktop's file manager, if there is one.
fn open_folder(dir: &std::path::Path) {
    let child = std::process::Command::new("xdg-open")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        // Reap it off the UI thread.
        let _ = std::thread::Builder::new()
            .name("poolscope-open-folder".to_string())
            .spawn(move || child.wait());
    }
}
