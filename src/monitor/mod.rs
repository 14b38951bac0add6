//! Sampling while a run is live: which core each task's processes are on (20 Hz, from
//! `/proc/PID/stat`), each slot's CPU% and RSS (4 Hz), and per-core utilization (4 Hz,
//! sysinfo). One thread, which the engine starts as a run starts; it ends when its
//! receiver is gone or, at its next tick, once it is told to stop.

mod placement;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use sysinfo::{CpuRefreshKind, RefreshKind, System};

use crate::engine::{RunClock, panics};
use crate::event::{Placement, SlotLoad};

pub use placement::{ProcessTable, StatFields, StatFile, clock_ticks, page_size, stat};

/// The main process of each running attempt, by worker slot: `(slot, pid)`.
pub type Watched = Arc<Mutex<Vec<(usize, u32)>>>;

/// Placement samples per second.
pub const PLACEMENT_HZ: u32 = 20;

/// Every this many placement ticks, loads and core utilization are sampled (4 Hz).
const SLOW_EVERY: u32 = 5;

/// What the monitor sends.
#[derive(Debug, Clone)]
pub enum Sample {
    Placement {
        at: Duration,
        placements: Vec<Placement>,
        loads: Vec<SlotLoad>,
    },
    Cores {
        at: Duration,
        usage: Vec<f32>,
    },
    /// The monitor's thread panicked (described by [`crate::engine::panics::catch`]).
    Panicked(String),
}

/// A running monitor; dropping it tells the thread to stop. Nothing waits for the thread
/// to end, nor wakes it: it ends at its next tick, at most one placement period later, and
/// whatever it still sends meanwhile is never read. (Waking it would cost the run's end
/// tens of microseconds: the woken thread often takes the very core that woke it.)
pub struct Monitor {
    stop: Arc<AtomicBool>,
}

impl Monitor {
    /// Start sampling the processes in `watched`, sending to `tx`.
    pub fn spawn(watched: Watched, tx: Sender<Sample>, clock: RunClock) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("poolscope-monitor".to_string())
            .spawn(move || {
                let sampled = panics::catch(|| sample_loop(&watched, &tx, clock, &stopped));
                if let Err(panic) = sampled {
                    let _ = tx.send(Sample::Panicked(panic));
                }
            })?;
        Ok(Monitor { stop })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Number of online cores (what sysinfo reports per core, without parsing `/proc/stat`).
pub fn core_count() -> usize {
    placement::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(crate::config::logical_cpus)
}

fn cpu_system() -> Option<System> {
    System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_usage()),
    )
    .ok()
}

fn sample_loop(watched: &Watched, tx: &Sender<Sample>, clock: RunClock, stop: &AtomicBool) {
    let period = Duration::from_secs(1) / PLACEMENT_HZ;
    let mut system = cpu_system();
    let mut table = ProcessTable::default();
    let mut next = Instant::now();
    let mut tick: u32 = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        panics::injected("monitor");
        let slow = tick.is_multiple_of(SLOW_EVERY);
        let roots: Vec<(usize, u32)> = watched.lock().map(|w| w.clone()).unwrap_or_default();
        if !roots.is_empty() || !table.is_empty() {
            table.refresh(&roots, slow);
            let placements = table.placements();
            let loads = if slow { table.loads() } else { Vec::new() };
            let at = clock.now();
            let sample = Sample::Placement {
                at,
                placements,
                loads,
            };
            if tx.send(sample).is_err() {
                return;
            }
        }
        if slow && let Some(system) = &mut system {
            system.refresh_cpu_usage();
            let usage = system.cpus().iter().map(|c| c.usage()).collect();
            if tx
                .send(Sample::Cores {
                    at: clock.now(),
                    usage,
                })
                .is_err()
            {
                return;
            }
        }
        tick = tick.wrapping_add(1);
        next += period;
        let now = Instant::now();
        if next <= now {
            next = now;
        }
        std::thread::sleep(next - now);
    }
}
