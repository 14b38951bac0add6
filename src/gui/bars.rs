//! A plot item that draws lanes of bars with level of detail: only the visible bars are
//! visited (binary search), bars narrower than 2 px merge into one rectangle per pixel run,
//! and failures inside a merged run stay visible as 1-px ticks.

use std::ops::RangeInclusive;

use egui::{Color32, Pos2, Rect, Shape, Stroke, Ui};
use egui_plot::{PlotBounds, PlotGeometry, PlotItem, PlotItemBase, PlotTransform};

use super::lanes::{Bar, BarKind, visible};

/// Bars narrower than this many pixels are merged with their neighbours.
const MIN_BAR_PX: f32 = 2.0;

/// Bars wider than this many pixels get their label written in them.
const LABEL_PX: f32 = 48.0;

/// Lane `i` is centred at y = -i; a bar fills this much of the lane's height.
const BAR_HEIGHT: f64 = 0.8;

pub fn color(kind: BarKind, dark: bool) -> Color32 {
    match (kind, dark) {
        (BarKind::Running, _) => Color32::from_rgb(66, 133, 244),
        (BarKind::Ok, true) => Color32::from_rgb(52, 168, 83),
        (BarKind::Ok, false) => Color32::from_rgb(46, 150, 74),
        (BarKind::Failed, _) => Color32::from_rgb(219, 68, 55),
        (BarKind::TimedOut, _) => Color32::from_rgb(242, 153, 0),
        (BarKind::Cancelled, _) => Color32::from_rgb(140, 140, 140),
    }
}

/// A persistent worker's life on its slot's lane, seconds from the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Life {
    pub lane: usize,
    pub started: f64,
    pub ready: Option<f64>,
    pub exited: Option<f64>,
    /// Gone with exit status 0; else (a crash, a kill) its end is marked in red.
    pub clean_exit: bool,
}

/// A worker starting: a band under its lane until it is ready.
pub const STARTING: Color32 = Color32::from_rgb(171, 71, 188);

/// Lanes of bars, one lane per row from the top.
pub struct LaneBars<'a> {
    base: PlotItemBase,
    pub lanes: Vec<&'a [Bar]>,
    /// Bars still growing: (lane, start, label).
    pub running: Vec<(usize, f64, String)>,
    /// The live edge: where running bars end.
    pub now: f64,
    /// Persistent workers' lives, drawn under the bars of their lanes.
    pub lives: Vec<Life>,
    /// Label of a bar (task name) by its index.
    pub label: &'a dyn Fn(&Bar) -> String,
    pub dark: bool,
}

impl<'a> LaneBars<'a> {
    pub fn new(lanes: Vec<&'a [Bar]>, label: &'a dyn Fn(&Bar) -> String, dark: bool) -> Self {
        LaneBars {
            base: PlotItemBase::new("lanes".to_string()),
            lanes,
            running: Vec::new(),
            now: 0.0,
            lives: Vec::new(),
            label,
            dark,
        }
    }

    fn lane_rect(transform: &PlotTransform, lane: usize, x0: f64, x1: f64) -> Rect {
        let y = -(lane as f64);
        let a = transform.position_from_point(&egui_plot::PlotPoint::new(x0, y + BAR_HEIGHT / 2.0));
        let b = transform.position_from_point(&egui_plot::PlotPoint::new(x1, y - BAR_HEIGHT / 2.0));
        Rect::from_two_pos(a, b)
    }

    fn draw_lane(
        &self,
        ui: &Ui,
        transform: &PlotTransform,
        lane: usize,
        bars: &[Bar],
        shapes: &mut Vec<Shape>,
    ) {
        let bounds = transform.bounds();
        let (x0, x1) = (bounds.min()[0], bounds.max()[0]);
        let row = Self::lane_rect(transform, lane, x0, x1);
        let ok = color(BarKind::Ok, self.dark);
        // A run of merged bars: its left and right edges and how many bars it holds.
        let mut merged: Option<(f32, f32, usize)> = None;
        let mut last_tick = f32::NEG_INFINITY;
        for bar in visible(bars, x0, x1) {
            let left = transform.position_from_point_x(bar.start);
            let right = transform.position_from_point_x(bar.end);
            if right - left >= MIN_BAR_PX {
                flush(ui, &mut merged, row, ok, shapes);
                // A 1-px gap shows where one attempt ends and the next begins.
                let right = if right - left > 4.0 {
                    right - 1.0
                } else {
                    right
                };
                let rect = Rect::from_x_y_ranges(left..=right, row.y_range());
                shapes.push(Shape::rect_filled(rect, 1.0, color(bar.kind, self.dark)));
                if right - left >= LABEL_PX {
                    label(ui, rect, &(self.label)(bar), shapes);
                }
                continue;
            }
            match &mut merged {
                // Gaps under MIN_BAR_PX are below what a lane can show: one density run.
                Some((_, b, n)) if left <= *b + MIN_BAR_PX => {
                    *b = b.max(right);
                    *n += 1;
                }
                _ => {
                    flush(ui, &mut merged, row, ok, shapes);
                    merged = Some((left, right, 1));
                }
            }
            if bar.kind != BarKind::Ok && left.floor() != last_tick {
                last_tick = left.floor();
                let x = left.floor() + 0.5;
                shapes.push(Shape::line_segment(
                    [Pos2::new(x, row.top()), Pos2::new(x, row.bottom())],
                    Stroke::new(1.0, color(bar.kind, self.dark)),
                ));
            }
        }
        flush(ui, &mut merged, row, ok, shapes);
    }
}

/// Draw the pending merged run, at least 1 px wide, under any failure ticks drawn after;
/// one wide enough says how many bars it holds.
fn flush(
    ui: &Ui,
    merged: &mut Option<(f32, f32, usize)>,
    row: Rect,
    ok: Color32,
    shapes: &mut Vec<Shape>,
) {
    if let Some((a, b, n)) = merged.take() {
        let rect = Rect::from_x_y_ranges(a..=b.max(a + 1.0), row.y_range());
        shapes.push(Shape::rect_filled(rect, 0.0, ok));
        if n > 1 && rect.width() >= LABEL_PX {
            label(ui, rect, &format!("{n} bars"), shapes);
        }
    }
}

fn label(ui: &Ui, rect: Rect, text: &str, shapes: &mut Vec<Shape>) {
    let galley = ui.painter().layout_no_wrap(
        text.to_string(),
        egui::FontId::proportional(11.0),
        Color32::WHITE,
    );
    if galley.size().x + 6.0 > rect.width() || galley.size().y > rect.height() {
        return;
    }
    let pos = Pos2::new(rect.left() + 3.0, rect.center().y - galley.size().y / 2.0);
    shapes.push(Shape::galley(pos, galley, Color32::WHITE));
}

impl LaneBars<'_> {
    /// A worker's life: a thin band along the bottom of its lane while it lives (thicker,
    /// in [`STARTING`], until it is ready), and a tick where it ended, red unless it left
    /// cleanly.
    fn draw_life(&self, transform: &PlotTransform, life: &Life, shapes: &mut Vec<Shape>) {
        let end = life.exited.unwrap_or(self.now).max(life.started);
        let row = Self::lane_rect(transform, life.lane, life.started, end);
        let band = |top: f32, rect: Rect| {
            Rect::from_min_max(egui::pos2(rect.min.x, rect.max.y - top), rect.max)
        };
        let alive = Color32::from_gray(if self.dark { 110 } else { 150 });
        shapes.push(Shape::rect_filled(band(3.0, row), 0.0, alive));
        let ready = life.ready.unwrap_or(end).min(end);
        let starting = Self::lane_rect(transform, life.lane, life.started, ready);
        let starting = starting.with_max_x(starting.max.x.max(starting.min.x + 2.0));
        shapes.push(Shape::rect_filled(band(7.0, starting), 0.0, STARTING));
        if life.exited.is_some() {
            let colour = if life.clean_exit {
                alive
            } else {
                color(BarKind::Failed, self.dark)
            };
            shapes.push(Shape::line_segment(
                [
                    egui::pos2(row.max.x, row.min.y),
                    egui::pos2(row.max.x, row.max.y),
                ],
                Stroke::new(2.0, colour),
            ));
        }
    }
}

impl PlotItem for LaneBars<'_> {
    fn shapes(&self, ui: &Ui, transform: &PlotTransform, shapes: &mut Vec<Shape>) {
        for life in &self.lives {
            self.draw_life(transform, life, shapes);
        }
        for (lane, bars) in self.lanes.iter().enumerate() {
            self.draw_lane(ui, transform, lane, bars, shapes);
        }
        for (lane, start, text) in &self.running {
            let rect = Self::lane_rect(transform, *lane, *start, self.now.max(*start));
            let rect = rect.with_max_x(rect.max.x.max(rect.min.x + 2.0));
            shapes.push(Shape::rect_filled(
                rect,
                1.0,
                color(BarKind::Running, self.dark),
            ));
            if rect.width() >= LABEL_PX {
                label(ui, rect, text, shapes);
            }
        }
    }

    fn initialize(&mut self, _x_range: RangeInclusive<f64>) {}

    fn color(&self) -> Color32 {
        color(BarKind::Ok, self.dark)
    }

    fn geometry(&self) -> PlotGeometry<'_> {
        PlotGeometry::None
    }

    fn bounds(&self) -> PlotBounds {
        let end = self
            .lanes
            .iter()
            .filter_map(|l| l.last().map(|b| b.end))
            .fold(self.now, f64::max);
        let lanes = self.lanes.len().max(1) as f64;
        PlotBounds::from_min_max([0.0, -(lanes - 1.0) - 0.6], [end.max(1.0), 0.6])
    }

    fn base(&self) -> &PlotItemBase {
        &self.base
    }

    fn base_mut(&mut self) -> &mut PlotItemBase {
        &mut self.base
    }
}
