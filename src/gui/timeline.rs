//! The timeline: a bar per attempt, one lane per worker slot or per CPU core; hover for
//! details, click to open the output. Follows the live edge until the user zooms or pans.

use egui::Ui;
use egui_plot::{Plot, PlotPoint};

use super::Command;
use super::bars::{LaneBars, Life};
use super::lanes::{Bar, BarKind, core_bars, hit};
use super::session::RunView;
use crate::event::{AttemptKey, Stream};
use crate::state::RunState;

/// View state of the timeline.
#[derive(Debug, Clone)]
pub struct TimelineView {
    /// Keep the whole run, up to now, in view.
    pub follow: bool,
}

impl Default for TimelineView {
    fn default() -> Self {
        TimelineView { follow: true }
    }
}

/// What a lane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    Slots,
    Cores,
}

impl TimelineView {
    pub fn ui(&mut self, ui: &mut Ui, run: &RunView, per_core: &mut bool) -> Option<Command> {
        ui.horizontal(|ui| {
            ui.label("Lanes:");
            ui.selectable_value(per_core, false, "Worker slots");
            ui.selectable_value(per_core, true, "CPU cores");
            ui.separator();
            ui.toggle_value(&mut self.follow, "Follow live edge")
                .on_hover_text(
                    "Keep the whole run in view as it grows (a zoom or a pan turns it off)",
                );
            ui.separator();
            legend(ui);
        });
        let kind = if *per_core {
            LaneKind::Cores
        } else {
            LaneKind::Slots
        };
        let state = &run.state;
        let hint = "Ctrl+wheel zooms, drag pans";
        ui.weak(match kind {
            LaneKind::Slots => format!(
                "{} lanes, one per worker slot · {hint}",
                run.lanes.slots.len()
            ),
            LaneKind::Cores => format!(
                "{} lanes, one per CPU core: a task shows while it runs there (sampled {} times a second) · {hint}",
                state.core_spans.len(),
                crate::monitor::PLACEMENT_HZ
            ),
        });
        let core_lanes: Vec<Vec<Bar>>;
        let lanes: Vec<&[Bar]> = match kind {
            LaneKind::Slots => run.lanes.slots.iter().map(Vec::as_slice).collect(),
            LaneKind::Cores => {
                core_lanes = state
                    .core_spans
                    .iter()
                    .map(|s| core_bars(s, state))
                    .collect();
                core_lanes.iter().map(Vec::as_slice).collect()
            }
        };
        let names = |bar: &Bar| bar_label(state, kind, bar);
        let mut item = LaneBars::new(lanes.clone(), &names, ui.visuals().dark_mode);
        item.now = state.elapsed().as_secs_f64();
        item.running = running_bars(state, kind);
        if kind == LaneKind::Slots {
            item.lives = lives(state);
        }
        let lane_count = lanes.len().max(1);
        let lane_name = match kind {
            LaneKind::Slots => "slot",
            LaneKind::Cores => "core",
        };
        let first = match kind {
            LaneKind::Slots => 1,
            LaneKind::Cores => 0,
        };
        let follow = self.follow;
        let now = item.now;
        let plot = Plot::new(("timeline", *per_core))
            .allow_zoom([true, false])
            .allow_drag([true, false])
            .allow_scroll([true, false])
            // A double click would also be two clicks, each opening an output.
            .allow_double_click_reset(false)
            .show_grid([true, false])
            .y_axis_min_width(52.0)
            .x_axis_label("seconds since the run started")
            .y_axis_formatter(move |mark, _| {
                let lane = (-mark.value).round();
                if (mark.value + lane).abs() < 1e-6 && lane >= 0.0 && (lane as usize) < lane_count {
                    format!("{lane_name} {}", lane as usize + first)
                } else {
                    String::new()
                }
            })
            .y_grid_spacer(|input| {
                let (lo, hi) = input.bounds;
                ((-hi).ceil().max(0.0) as i64..=(-lo).floor() as i64)
                    .map(|lane| egui_plot::GridMark {
                        value: -(lane as f64),
                        step_size: 1.0,
                    })
                    .collect()
            })
            .label_formatter(|_| None)
            .show(ui, |plot_ui| {
                if follow {
                    plot_ui.set_plot_bounds_x(0.0..=now.max(1.0) * 1.02);
                }
                plot_ui.set_plot_bounds_y(-(lane_count as f64) + 0.4..=0.6);
                plot_ui.add(item);
            });
        let response = &plot.response;
        let scrolled = response.hovered()
            && ui.input(|i| i.smooth_scroll_delta != egui::Vec2::ZERO || i.zoom_delta() != 1.0);
        if response.dragged() || scrolled {
            self.follow = false;
        }
        let pos = response.hover_pos()?;
        let value = plot.transform.value_from_position(pos);
        let lane = (-value.y).round();
        if lane < 0.0 || lane as usize >= lanes.len() {
            return None;
        }
        let slack = 3.0 / plot.transform.dpos_dvalue_x().abs().max(1e-9);
        let bar = hit(lanes[lane as usize], value.x, slack).copied();
        let running = bar
            .is_none()
            .then(|| running_at(state, kind, lane as usize, value))
            .flatten();
        let key = bar.and_then(|b| attempt_key(state, kind, &b)).or(running);
        let tip = bar
            .map(|b| bar_details(state, kind, lane as usize, &b))
            .or_else(|| {
                running.map(|k| format!("#{} {} (running)", k.seq, state.task_name(k.seq)))
            })?;
        let clicked = response.clicked();
        response
            .clone()
            .on_hover_text_at_pointer(format!("{tip}\nclick to open its output"));
        if clicked {
            return key.map(|k| Command::OpenOutput(k, Stream::Stdout));
        }
        None
    }
}

fn bar_label(state: &RunState, kind: LaneKind, bar: &Bar) -> String {
    let seq = match kind {
        LaneKind::Slots => state.attempts.get(bar.index).map_or(0, |a| a.key.seq),
        LaneKind::Cores => bar.index,
    };
    state.task_label(seq)
}

fn attempt_key(state: &RunState, kind: LaneKind, bar: &Bar) -> Option<AttemptKey> {
    match kind {
        LaneKind::Slots => state.attempts.get(bar.index).map(|a| a.key),
        LaneKind::Cores => state
            .attempts
            .iter()
            .rev()
            .find(|a| a.key.seq == bar.index)
            .map(|a| a.key),
    }
}

fn bar_details(state: &RunState, kind: LaneKind, lane: usize, bar: &Bar) -> String {
    if kind == LaneKind::Cores {
        return core_details(state, lane, bar);
    }
    match (kind, state.attempts.get(bar.index)) {
        (LaneKind::Slots, Some(a)) => format!(
            "#{} {} (attempt {})\nslot {} · PID {}\nstart {:.3} s · took {:.3} s\n{}",
            a.key.seq,
            state.task_name(a.key.seq),
            a.key.attempt,
            a.slot,
            a.pid,
            bar.start,
            bar.end - bar.start,
            a.outcome.describe()
        ),
        _ => format!("#{} {}", bar.index, state.task_name(bar.index)),
    }
}

/// The tooltip of a bar on core `core`: the task, its attempt and PID, and how long it
/// was seen running there.
fn core_details(state: &RunState, core: usize, bar: &Bar) -> String {
    let spans = state.core_spans.get(core).map_or(&[][..], Vec::as_slice);
    let at = spans.partition_point(|s| s.start.as_secs_f64() < bar.start);
    let Some(span) = spans.get(at).filter(|s| s.seq == bar.index) else {
        return format!("#{} {}", bar.index, state.task_name(bar.index));
    };
    let outcome = state
        .span_outcome(span)
        .map_or_else(|| "running".to_string(), |o| o.describe());
    format!(
        "#{} {} (attempt {})\ncore {core} · slot {} · PID {}\nrunning here from {:.3} s for {:.3} s\n{outcome}",
        span.seq,
        state.task_name(span.seq),
        span.attempt,
        span.slot,
        span.pid,
        bar.start,
        (span.end - span.start).as_secs_f64(),
    )
}

/// Bars of the attempts running now.
fn running_bars(state: &RunState, kind: LaneKind) -> Vec<(usize, f64, String)> {
    match kind {
        LaneKind::Slots => state
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let c = s.current.as_ref()?;
                let label = state.task_label(c.key.seq);
                Some((i, c.since.as_secs_f64(), label))
            })
            .collect(),
        LaneKind::Cores => state
            .open_spans()
            .iter()
            .enumerate()
            .filter_map(|(core, span)| {
                let s = span.as_ref()?;
                Some((core, s.start.as_secs_f64(), state.task_label(s.seq)))
            })
            .collect(),
    }
}

/// The running attempt under the pointer, if any.
fn running_at(
    state: &RunState,
    kind: LaneKind,
    lane: usize,
    value: PlotPoint,
) -> Option<AttemptKey> {
    let now = state.elapsed().as_secs_f64();
    match kind {
        LaneKind::Slots => {
            let c = state.slots.get(lane)?.current.as_ref()?;
            (value.x >= c.since.as_secs_f64() && value.x <= now).then_some(c.key)
        }
        LaneKind::Cores => {
            let span = state.open_spans().get(lane)?.as_ref()?;
            let slot = state.slots.get(span.slot.wrapping_sub(1))?;
            let c = slot.current.as_ref()?;
            (value.x >= span.start.as_secs_f64() && value.x <= now).then_some(c.key)
        }
    }
}

/// The persistent workers' lives, on their slots' lanes.
fn lives(state: &RunState) -> Vec<Life> {
    state
        .workers
        .iter()
        .map(|w| Life {
            lane: w.slot.saturating_sub(1),
            started: w.started.as_secs_f64(),
            ready: w.ready.map(|t| t.as_secs_f64()),
            exited: w.exited.map(|t| t.as_secs_f64()),
            clean_exit: w.clean_exit,
        })
        .collect()
}

/// What the bars' colours mean.
fn legend(ui: &mut Ui) {
    let dark = ui.visuals().dark_mode;
    for (kind, name) in [
        (BarKind::Running, "running"),
        (BarKind::Ok, "ok"),
        (BarKind::Failed, "failed"),
        (BarKind::TimedOut, "timed out"),
        (BarKind::Cancelled, "cancelled"),
    ] {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter()
            .rect_filled(rect, 2.0, super::bars::color(kind, dark));
        ui.label(name);
    }
    let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 2.0, super::bars::STARTING);
    ui.label("worker starting").on_hover_text(
        "A persistent worker's start-up, under its slot's lane; then a grey line under the \
         lane while it lives, and a tick where it ended (red if it crashed or was killed)",
    );
}
