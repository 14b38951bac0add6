//! The load report: the tasks with their expanded commands, the ignored files, and any
//! manifest error in place (with the traceback of a worker module that cannot load).

use egui::Ui;

use super::session::Session;

/// The report of `session`'s directory; its task list takes at most `tasks_height`
/// points, and scrolls.
pub fn ui(ui: &mut Ui, session: &Session, tasks_height: f32) {
    let dir = match &session.loaded {
        Ok(dir) => dir,
        Err(error) => {
            ui.colored_label(ui.visuals().error_fg_color, "This directory cannot run:");
            // A sentence, then what explains it (a worker module's traceback), as it was.
            let (sentence, details) = error.split_once('\n').unwrap_or((error, ""));
            ui.colored_label(ui.visuals().error_fg_color, sentence);
            if !details.is_empty() {
                egui::ScrollArea::both()
                    .id_salt("load error")
                    .max_height(320.0)
                    .show(ui, |ui| {
                        ui.add(egui::Label::new(egui::RichText::new(details).monospace()).extend());
                    });
            }
            return;
        }
    };
    ui.heading(&dir.name);
    ui.weak(dir.root.display().to_string());
    match &dir.manifest {
        Some(m) => ui.weak(format!("manifest: {}", m.display())),
        None => ui.weak("no manifest: every executable file is a task"),
    };
    if let Some(worker) = dir.worker_line() {
        ui.label(format!("persistent workers: {worker}"));
    }
    egui::CollapsingHeader::new(format!("{} tasks", dir.tasks.len()))
        .default_open(true)
        .show(ui, |ui| {
            // Only the rows in view are laid out: a directory may hold 100,000 tasks.
            let row = ui.text_style_height(&egui::TextStyle::Body) * 2.0
                + 2.0 * ui.spacing().item_spacing.y;
            egui::ScrollArea::vertical()
                .id_salt("tasks")
                .max_height(tasks_height)
                .show_rows(ui, row, dir.tasks.len(), |ui, rows| {
                    for t in &dir.tasks[rows] {
                        let command = dir.shown_command(t);
                        ui.horizontal(|ui| {
                            ui.label(format!("{}", t.seq));
                            ui.label(&t.name);
                        })
                        .response
                        .on_hover_text(t.command_line(None));
                        ui.indent(("command", t.seq), |ui| {
                            ui.monospace(command);
                        });
                    }
                });
        });
    if !dir.ignored.is_empty() {
        egui::CollapsingHeader::new(format!("{} ignored files", dir.ignored.len())).show(
            ui,
            |ui| {
                for i in &dir.ignored {
                    ui.label(format!("{} — {}", i.name, i.reason));
                }
            },
        );
    }
    for note in dir.notes.iter().chain(&session.cleanup_note) {
        ui.colored_label(ui.visuals().warn_fg_color, note);
    }
}
