//! The pool settings form: every `[pool]` key, prefilled from the manifest, and the Run,
//! Stop and Kill buttons.

use egui::Ui;

use super::Command;
use crate::config::{self, Halt, Order, PoolConfig, PoolSettings};

/// The form's fields as the user edits them: the configuration itself, but for the time
/// limit, which is edited as text.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolForm {
    pub config: PoolConfig,
    /// A duration such as `30s`; empty for none.
    pub timeout: String,
}

impl PoolForm {
    /// The form for a directory whose manifest says `settings`.
    pub fn from_settings(settings: &PoolSettings) -> Self {
        let config = settings.resolve();
        PoolForm {
            timeout: config
                .timeout
                .map_or_else(String::new, |t| humantime::format_duration(t).to_string()),
            config,
        }
    }

    /// The configuration to run with, or why the form does not make one.
    pub fn config(&self) -> Result<PoolConfig, String> {
        let timeout = match self.timeout.trim() {
            "" | "none" => None,
            t => Some(config::parse_duration(t)?),
        };
        Ok(PoolConfig {
            workers: self.config.workers.max(1),
            timeout,
            ..self.config.clone()
        })
    }

    /// Draw the form and the run buttons; `running` says whether a run is live.
    pub fn ui(&mut self, ui: &mut Ui, can_run: bool, running: bool) -> Option<Command> {
        egui::Grid::new("pool-form")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| self.fields(ui));
        let problem = self.config().err();
        if let Some(problem) = &problem {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
        let mut command = None;
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let run = egui::Button::new("▶ Run").min_size(egui::vec2(70.0, 0.0));
            if ui
                .add_enabled(can_run && !running && problem.is_none(), run)
                .on_hover_text("Run every task (F5)")
                .clicked()
            {
                command = Some(Command::Run);
            }
            if ui
                .add_enabled(running, egui::Button::new("Stop"))
                .on_hover_text("Start no new task; let running ones finish (Esc)")
                .clicked()
            {
                command = Some(Command::Stop);
            }
            if ui
                .add_enabled(running, egui::Button::new("Kill"))
                .on_hover_text("Kill the running tasks now (TERM, then KILL after 2 s)")
                .clicked()
            {
                command = Some(Command::Kill);
            }
        });
        command
    }

    fn fields(&mut self, ui: &mut Ui) {
        let label = ui.label("Workers");
        ui.add(
            egui::DragValue::new(&mut self.config.workers).range(1..=crate::limits::MAX_WORKERS),
        )
        .labelled_by(label.id);
        ui.end_row();

        let label = ui.label("Timeout");
        ui.add(
            egui::TextEdit::singleline(&mut self.timeout)
                .hint_text("none, or 30s, 2m")
                .desired_width(90.0),
        )
        .labelled_by(label.id);
        ui.end_row();

        let label = ui.label("Retries");
        ui.add(
            egui::DragValue::new(&mut self.config.retries).range(0..=crate::limits::MAX_RETRIES),
        )
        .labelled_by(label.id);
        ui.end_row();

        let label = ui.label("Halt");
        egui::ComboBox::from_id_salt("halt")
            .selected_text(format!("{:?}", self.config.halt).to_lowercase())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.config.halt, Halt::Never, "never");
                ui.selectable_value(&mut self.config.halt, Halt::Soon, "soon");
                ui.selectable_value(&mut self.config.halt, Halt::Now, "now");
            })
            .response
            .labelled_by(label.id);
        ui.end_row();

        let label = ui.label("Order");
        egui::ComboBox::from_id_salt("order")
            .selected_text(match self.config.order {
                Order::Listed => "listed",
                Order::LongestFirst => "longest-first",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.config.order, Order::Listed, "listed");
                ui.selectable_value(&mut self.config.order, Order::LongestFirst, "longest-first");
            })
            .response
            .labelled_by(label.id);
        ui.end_row();

        ui.label("");
        ui.checkbox(&mut self.config.pin, "Pin slots to cores");
        ui.end_row();

        let label = ui.label("Max tasks per worker");
        ui.add(egui::DragValue::new(&mut self.config.max_tasks_per_worker).range(0..=1_000_000))
            .labelled_by(label.id)
            .on_hover_text("Persistent workers only; 0 = never recycle");
        ui.end_row();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn form_round_trips_the_manifest() {
        let settings = PoolSettings {
            workers: Some(3),
            timeout: Some(Duration::from_secs(90)),
            halt: Some(Halt::Soon),
            ..Default::default()
        };
        let form = PoolForm::from_settings(&settings);
        assert_eq!(form.timeout, "1m 30s");
        let c = form.config().expect("valid");
        assert_eq!(c.workers, 3);
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.halt, Halt::Soon);
    }

    #[test]
    fn a_bad_timeout_is_reported() {
        let mut form = PoolForm::from_settings(&PoolSettings::default());
        form.timeout = "soon".into();
        assert!(form.config().is_err_and(|e| e.contains("30s")));
        form.timeout = String::new();
        assert_eq!(form.config().map(|c| c.timeout), Ok(None));
    }
}
