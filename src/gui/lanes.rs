//! The timeline's data: per lane, the bars sorted by start, so that the visible ones are
//! found by binary search and hover hits by another.

use crate::event::{Event, Outcome};
use crate::state::{CoreSpan, RunState};

/// How a bar is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Running,
    Ok,
    Failed,
    TimedOut,
    Cancelled,
}

impl BarKind {
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Exited { code: 0 } => BarKind::Ok,
            Outcome::TimedOut => BarKind::TimedOut,
            Outcome::Cancelled => BarKind::Cancelled,
            _ => BarKind::Failed,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, BarKind::Failed | BarKind::TimedOut)
    }
}

/// One bar: seconds from the run's start, and what it stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub start: f64,
    pub end: f64,
    pub kind: BarKind,
    /// Index into the run's `attempts` (slot lanes) or task number (core lanes).
    pub index: usize,
}

/// Finished attempts per worker slot (lane 0 = slot 1), in start order.
#[derive(Debug, Clone, Default)]
pub struct Lanes {
    pub slots: Vec<Vec<Bar>>,
    attempts: usize,
}

impl Lanes {
    /// Add what `event` finished.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => {
                *self = Lanes {
                    slots: vec![Vec::new(); info.config.workers],
                    attempts: 0,
                };
            }
            Event::AttemptFinished(record) => {
                let lane = record.slot.saturating_sub(1);
                if self.slots.len() <= lane {
                    self.slots.resize(lane + 1, Vec::new());
                }
                let bar = Bar {
                    start: record.started.as_secs_f64(),
                    end: record.ended.as_secs_f64(),
                    kind: BarKind::of(&record.outcome),
                    index: self.attempts,
                };
                insert_sorted(&mut self.slots[lane], bar);
                self.attempts += 1;
            }
            _ => {}
        }
    }
}

/// Keep `lane` sorted by start (a slot's attempts nearly always arrive in order).
fn insert_sorted(lane: &mut Vec<Bar>, bar: Bar) {
    let at = lane.partition_point(|b| b.start <= bar.start);
    lane.insert(at, bar);
}

/// Bars of one core lane from the run's per-core spans, coloured by how their attempt
/// ended (running, if it has not).
pub fn core_bars(spans: &[CoreSpan], state: &RunState) -> Vec<Bar> {
    let mut bars: Vec<Bar> = spans
        .iter()
        .map(|s| Bar {
            start: s.start.as_secs_f64(),
            end: s.end.as_secs_f64().max(s.start.as_secs_f64() + 0.02),
            kind: state.span_outcome(s).map_or(BarKind::Running, BarKind::of),
            index: s.seq,
        })
        .collect();
    bars.sort_by(|a, b| a.start.total_cmp(&b.start));
    bars
}

/// The visible range of `lane` between `x0` and `x1`: from the first bar that ends at or
/// after `x0`. Bars of a lane do not overlap, so their ends are sorted too.
pub fn visible(lane: &[Bar], x0: f64, x1: f64) -> &[Bar] {
    let first = lane.partition_point(|b| b.end < x0);
    let last = lane.partition_point(|b| b.start <= x1);
    if first >= last {
        &[]
    } else {
        &lane[first..last]
    }
}

/// The bar of `lane` under `x`, if any (within `slack` seconds, for bars too thin to hit).
pub fn hit(lane: &[Bar], x: f64, slack: f64) -> Option<&Bar> {
    let near = visible(lane, x - slack, x + slack);
    near.iter()
        .min_by(|a, b| distance(a, x).total_cmp(&distance(b, x)))
}

fn distance(bar: &Bar, x: f64) -> f64 {
    if x < bar.start {
        bar.start - x
    } else if x > bar.end {
        x - bar.end
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start: f64, end: f64) -> Bar {
        Bar {
            start,
            end,
            kind: BarKind::Ok,
            index: 0,
        }
    }

    #[test]
    fn visible_bars_by_binary_search() {
        let lane: Vec<Bar> = (0..10).map(|i| bar(i as f64, i as f64 + 0.5)).collect();
        let v = visible(&lane, 2.7, 5.2);
        let starts: Vec<f64> = v.iter().map(|b| b.start).collect();
        assert_eq!(starts, [3.0, 4.0, 5.0]);
        assert!(visible(&lane, 20.0, 30.0).is_empty());
        assert_eq!(visible(&lane, 2.2, 2.4).first().map(|b| b.start), Some(2.0));
    }

    #[test]
    fn hover_finds_the_nearest_bar() {
        let lane = vec![bar(0.0, 1.0), bar(1.1, 1.2), bar(5.0, 6.0)];
        assert_eq!(hit(&lane, 0.5, 0.01).map(|b| b.start), Some(0.0));
        assert_eq!(hit(&lane, 1.25, 0.1).map(|b| b.start), Some(1.1));
        assert_eq!(hit(&lane, 3.0, 0.1), None);
    }

    #[test]
    fn bars_stay_sorted() {
        let mut lane = vec![bar(0.0, 1.0), bar(2.0, 3.0)];
        insert_sorted(&mut lane, bar(1.0, 1.5));
        let starts: Vec<f64> = lane.iter().map(|b| b.start).collect();
        assert_eq!(starts, [0.0, 1.0, 2.0]);
    }
}
