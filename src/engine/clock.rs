//! The run's clock: offsets from its start, anchored to the wall clock once.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
    wall: SystemTime,
}

impl RunClock {
    pub fn start() -> Self {
        RunClock {
            start: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Time since the run started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Offset of `instant` from the run's start.
    pub fn offset(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.start)
    }

    /// The instant `offset` into the run (now, for an offset past the end of time).
    pub fn instant(&self, offset: Duration) -> Instant {
        self.start.checked_add(offset).unwrap_or_else(Instant::now)
    }

    /// The run's start on the wall clock.
    pub fn started_at(&self) -> SystemTime {
        self.wall
    }
}
