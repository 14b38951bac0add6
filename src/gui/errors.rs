//! The errors panel: every failed attempt with its exit code or signal and the tail of its
//! stderr, searchable, with its whole output one click away.

use egui::Ui;

use super::Command;
use crate::event::Stream;
use crate::state::RunState;

/// View state of the errors panel.
#[derive(Debug, Clone, Default)]
pub struct ErrorsView {
    pub filter: String,
}

impl ErrorsView {
    pub fn ui(&mut self, ui: &mut Ui, state: &RunState) -> Option<Command> {
        let mut command = None;
        let failed: Vec<_> = state
            .attempts
            .iter()
            .filter(|a| a.outcome.is_failure())
            .collect();
        ui.horizontal(|ui| {
            let label = ui.label("Search errors");
            ui.text_edit_singleline(&mut self.filter)
                .labelled_by(label.id);
            ui.label(format!("{} failed attempts", failed.len()));
        });
        let needle = self.filter.to_lowercase();
        egui::ScrollArea::vertical()
            .id_salt("errors")
            .show(ui, |ui| {
                for a in failed {
                    let name = state.task_name(a.key.seq);
                    let outcome = a.outcome.describe();
                    let haystack = format!("{name} {outcome} {}", a.stderr_tail).to_lowercase();
                    if !needle.is_empty() && !haystack.contains(&needle) {
                        continue;
                    }
                    ui.group(|ui| {
                        ui.horizontal(|ui| {
                            ui.strong(format!("#{} {name}", a.key.seq));
                            if a.key.attempt > 1 || !a.is_final {
                                ui.label(format!("attempt {}", a.key.attempt));
                            }
                            ui.colored_label(ui.visuals().error_fg_color, &outcome);
                            ui.weak(format!("slot {} · PID {}", a.slot, a.pid));
                            if ui.button("Open output").clicked() {
                                command = Some(Command::OpenOutput(a.key, Stream::Stderr));
                            }
                        });
                        if a.stderr_tail.is_empty() {
                            ui.weak("(nothing on stderr)");
                        } else {
                            ui.monospace(&a.stderr_tail);
                        }
                    });
                }
            });
        command
    }
}
