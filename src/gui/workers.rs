//! The workers panel: one row per worker slot, with its live PID. For persistent workers
//! the PID stays while the worker lives; a recycled or replaced worker shows a new PID on
//! the same slot, and the earlier ones are listed after it.

use egui::Ui;

use crate::human::bytes;
use crate::state::RunState;

/// Earlier worker PIDs of a slot shown before "…".
const EARLIER_SHOWN: usize = 3;

pub fn ui(ui: &mut Ui, state: &RunState) {
    let now = state.elapsed();
    let persistent = !state.workers.is_empty();
    egui::ScrollArea::vertical()
        .id_salt("workers")
        .max_height(ui.available_height())
        .show(ui, |ui| {
            egui::Grid::new("workers-grid")
                .striped(true)
                .num_columns(if persistent { 10 } else { 9 })
                .spacing([18.0, 4.0])
                .show(ui, |ui| {
                    for h in [
                        "Slot", "State", "PID", "Task", "Elapsed", "CPU %", "RSS", "Done", "Failed",
                    ] {
                        ui.strong(h);
                    }
                    if persistent {
                        ui.strong("Earlier workers");
                    }
                    ui.end_row();
                    for (i, slot) in state.slots.iter().enumerate() {
                        ui.label(format!("{}", i + 1));
                        let live = state.live_worker(i + 1);
                        let starting = live.is_some_and(|w| w.ready.is_none());
                        // A persistent worker between items of a live run: loaded, waiting.
                        let waiting = live.filter(|w| w.ready.is_some() && state.end.is_none());
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
                            None if starting => {
                                ui.label("starting");
                                ui.monospace(
                                    slot.last_pid.map_or("–".to_string(), |p| p.to_string()),
                                );
                                for _ in 0..4 {
                                    ui.weak("–");
                                }
                            }
                            None if waiting.is_some() => {
                                ui.label("ready");
                                ui.monospace(
                                    waiting.map_or("–".to_string(), |w| w.pid.to_string()),
                                );
                                ui.weak("–");
                                ui.weak("–");
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
                        if persistent {
                            let pids: Vec<u32> = state.slot_workers(i + 1).map(|w| w.pid).collect();
                            let label = ui.weak(earlier_workers(&pids));
                            let gone = state
                                .slot_workers(i + 1)
                                .filter(|w| w.exited.is_some())
                                .last();
                            if let Some(w) = gone {
                                let why = w.exit.as_deref().unwrap_or("gone");
                                label.on_hover_text(format!("last worker gone: {}: {why}", w.pid));
                            }
                        }
                        ui.end_row();
                    }
                });
        });
}

/// `4017, 3990` (newest first) for the workers a slot had before its latest, or `–`.
fn earlier_workers(pids: &[u32]) -> String {
    let Some((_, earlier)) = pids.split_last() else {
        return "–".to_string();
    };
    if earlier.is_empty() {
        return "–".to_string();
    }
    let mut shown: Vec<String> = earlier
        .iter()
        .rev()
        .take(EARLIER_SHOWN)
        .map(u32::to_string)
        .collect();
    if earlier.len() > EARLIER_SHOWN {
        shown.push(format!("… {} in all", earlier.len()));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::earlier_workers;

    #[test]
    fn earlier_workers_newest_first() {
        assert_eq!(earlier_workers(&[]), "–");
        assert_eq!(earlier_workers(&[7]), "–");
        assert_eq!(earlier_workers(&[5, 6, 7]), "6, 5");
        assert_eq!(earlier_workers(&[1, 2, 3, 4, 5, 6]), "5, 4, 3, … 5 in all");
    }
}
