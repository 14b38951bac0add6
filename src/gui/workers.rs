//! The workers panel: one row per worker slot, with its live PID.

use egui::Ui;

use crate::human::bytes;
use crate::state::RunState;

pub fn ui(ui: &mut Ui, state: &RunState) {
    let now = state.elapsed();
    egui::ScrollArea::vertical()
        .id_salt("workers")
        .max_height(ui.available_height())
        .show(ui, |ui| {
            egui::Grid::new("workers-grid")
                .striped(true)
                .num_columns(9)
                .spacing([18.0, 4.0])
                .show(ui, |ui| {
                    for h in [
                        "Slot", "State", "PID", "Task", "Elapsed", "CPU %", "RSS", "Done", "Failed",
                    ] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for (i, slot) in state.slots.iter().enumerate() {
                        ui.label(format!("{}", i + 1));
                        match &slot.current {
                            Some(run) => {
                                ui.label("running");
                                ui.monospace(run.pid.to_string());
                                ui.label(state.task_label(run.key.seq));
                                ui.label(format!(
                                    "{:.1} s",
                                    now.saturating_sub(run.since).as_secs_f64()
                                ));
                                ui.label(format!("{:.0}", slot.cpu_percent));
                                ui.label(bytes(slot.rss));
                            }
                            None => {
                                ui.weak(if state.end.is_some() { "done" } else { "idle" });
                                ui.weak(slot.last_pid.map_or("–".to_string(), |p| p.to_string()));
                                for _ in 0..4 {
                                    ui.weak("–");
                                }
                            }
                        }
                        ui.label(slot.done.to_string());
                        if slot.failed > 0 {
                            ui.colored_label(ui.visuals().error_fg_color, slot.failed.to_string());
                        } else {
                            ui.label("0");
                        }
                        ui.end_row();
                    }
                });
        });
}
