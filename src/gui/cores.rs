//! Per-core utilization over the run, with the number of running tasks over it; under it,
//! the whole machine's CPU with the pool's own share of it apart.

use egui::Ui;
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::session::RunView;

/// Points per line at most; longer series are thinned (keeping each bucket's peak).
const MAX_POINTS: usize = 2000;

pub fn ui(ui: &mut Ui, run: &RunView) {
    let state = &run.state;
    let workers = state.slots.len().max(1) as f64;
    ui.label(format!(
        "CPU utilization per core, sampled 4 times a second; the dashed line is the share of the {} worker slots running a task.",
        state.slots.len()
    ));
    let height = ui.available_height();
    percent_plot("cores", "%")
        .height(height * 0.6)
        .show(ui, |plot_ui| {
            for (core, series) in state.cores.usage.iter().enumerate() {
                let points: Vec<[f64; 2]> = state
                    .cores
                    .times
                    .iter()
                    .zip(series)
                    .map(|(t, u)| [t.as_secs_f64(), f64::from(*u)])
                    .collect();
                plot_ui.line(Line::new(
                    format!("core {core}"),
                    PlotPoints::from(thin(points)),
                ));
            }
            let mut steps = Vec::with_capacity(state.busy.len() * 2);
            let mut last = 0.0;
            for &(t, n) in &state.busy {
                let x = t.as_secs_f64();
                steps.push([x, last]);
                last = f64::from(n) / workers * 100.0;
                steps.push([x, last]);
            }
            steps.push([state.elapsed().as_secs_f64(), last]);
            plot_ui.line(
                Line::new("tasks running", PlotPoints::from(thin(steps)))
                    .style(egui_plot::LineStyle::dashed_loose())
                    .width(2.0),
            );
        });
    machine_and_pool(ui, state);
}

/// The machine's CPU (all cores, in percent of the machine) as an area, and inside it the
/// part the pool's processes used: what is left above the pool is the rest of the machine.
fn machine_and_pool(ui: &mut Ui, state: &crate::state::RunState) {
    let cores = state.cores.usage.len().max(1) as f64;
    ui.label(format!(
        "The whole machine's CPU ({} cores = 100 %), and the part of it the pool's processes used; the rest is other programs.",
        state.cores.usage.len()
    ));
    let machine: Vec<[f64; 2]> = state
        .cores
        .times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let sum: f64 = state
                .cores
                .usage
                .iter()
                .map(|series| f64::from(series.get(i).copied().unwrap_or(0.0)))
                .sum();
            [t.as_secs_f64(), sum / cores]
        })
        .collect();
    let pool: Vec<[f64; 2]> = state
        .pool_cpu
        .iter()
        .map(|(t, cpu)| [t.as_secs_f64(), (f64::from(*cpu) / cores).min(100.0)])
        .collect();
    percent_plot("machine-and-pool", "% of the machine").show(ui, |plot_ui| {
        plot_ui.line(
            Line::new("whole machine", PlotPoints::from(thin(machine)))
                .fill(0.0)
                .color(egui::Color32::from_gray(140)),
        );
        plot_ui.line(
            Line::new("the pool's processes", PlotPoints::from(thin(pool)))
                .fill(0.0)
                .color(egui::Color32::from_rgb(66, 133, 244)),
        );
    });
}

/// A plot of percentages over the run's seconds, zoomed and dragged along time only.
fn percent_plot(id: &'static str, y_label: &'static str) -> Plot<'static> {
    Plot::new(id)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(100.0)
        .allow_zoom([true, false])
        .allow_drag([true, false])
        .y_axis_label(y_label)
        .x_axis_label("seconds since the run started")
}

/// At most [`MAX_POINTS`] points: each bucket keeps its highest point.
fn thin(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let bucket = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(bucket)
        .filter_map(|c| c.iter().copied().max_by(|a, b| a[1].total_cmp(&b[1])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_peaks_and_bounds_the_count() {
        // 10,000 points thin to buckets of 5, each holding one spike.
        let spike = |i: usize| if i % 5 == 2 { 100.0 } else { (i % 3) as f64 };
        let points: Vec<[f64; 2]> = (0..10_000).map(|i| [i as f64, spike(i)]).collect();
        let thinned = thin(points);
        assert_eq!(thinned.len(), MAX_POINTS);
        assert!(thinned.iter().all(|p| p[1] == 100.0));
    }
}
