//! The status line: tasks ended of total and how (ok, failed, timed out, cancelled,
//! skipped apart), elapsed, ETA or speed-up, and the run directory.

use egui::Ui;

use crate::human::seconds;
use crate::state::RunState;

pub fn ui(ui: &mut Ui, state: Option<&RunState>) {
    ui.horizontal(|ui| {
        let Some(state) = state else {
            ui.weak("No run yet: press Run (F5).");
            return;
        };
        counts(ui, state);
        ui.separator();
        ui.label(format!("elapsed {}", seconds(state.elapsed())));
        match (state.end, state.speedup_or_why()) {
            (None, _) => match state.eta() {
                Some(eta) => ui.label(format!("ETA {}", seconds(eta))),
                None => ui.label("ETA –"),
            },
            (Some(end), _) if end.interrupted => ui.label("stopped"),
            (Some(_), Ok(s)) => ui.label(format!(
                "speed-up {s:.2}× (summed task time {})",
                seconds(state.task_time())
            )),
            (Some(_), Err(why)) => ui
                .weak("speed-up –")
                .on_hover_text(format!("No speed-up: {}.", why.reason())),
        };
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

/// How many tasks ended, and how, each kind apart: `12/20 ended: 9 ok · 1 failed ·
/// 2 cancelled`, and what was skipped or never ran.
fn counts(ui: &mut Ui, state: &RunState) {
    let c = state.counts();
    ui.label(format!("{}/{} ended:", c.done(), c.total));
    ui.label(format!("{} ok", c.ok));
    let error = ui.visuals().error_fg_color;
    let warn = ui.visuals().warn_fg_color;
    for (n, what, colour) in [
        (c.failed, "failed", Some(error)),
        (c.timed_out, "timed out", Some(warn)),
        (c.cancelled, "cancelled", None),
        (c.skipped, "skipped", None),
    ] {
        if n == 0 && what != "failed" {
            continue;
        }
        ui.weak("·");
        let text = format!("{n} {what}");
        match colour {
            Some(colour) if n > 0 => ui.colored_label(colour, text),
            _ => ui.label(text),
        };
    }
    let left = c.queued + c.running;
    if state.end.is_some() && left > 0 {
        ui.weak("·");
        ui.label(format!("{left} not run"));
    }
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
