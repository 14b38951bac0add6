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

/// Lanes of bars, one lane per row from the top.
pub struct LaneBars<'a> {
    base: PlotItemBase,
    pub lanes: Vec<&'a [Bar]>,
    /// Bars still growing: (lane, start, label).
    pub running: Vec<(usize, f64, String)>,
    /// The live edge: where running bars end.
    pub now: f64,
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
        let mut merged: Option<(f32, f32)> = None;
        let mut last_tick = f32::NEG_INFINITY;
        for bar in visible(bars, x0, x1) {
            let left = transform.position_from_point_x(bar.start);
            let right = transform.position_from_point_x(bar.end);
            if right - left >= MIN_BAR_PX {
                flush(&mut merged, row, ok, shapes);
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
                Some((_, b)) if left <= *b + 1.0 => *b = b.max(right),
                _ => {
                    flush(&mut merged, row, ok, shapes);
                    merged = Some((left, right));
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
        flush(&mut merged, row, ok, shapes);
    }
}

/// Draw the pending merged run, at least 1 px wide, under any failure ticks drawn after.
fn flush(merged: &mut Option<(f32, f32)>, row: Rect, ok: Color32, shapes: &mut Vec<Shape>) {
    if let Some((a, b)) = merged.take() {
        let rect = Rect::from_x_y_ranges(a..=b.max(a + 1.0), row.y_range());
        shapes.push(Shape::rect_filled(rect, 0.0, ok));
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

impl PlotItem for LaneBars<'_> {
    fn shapes(&self, ui: &Ui, transform: &PlotTransform, shapes: &mut Vec<Shape>) {
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
