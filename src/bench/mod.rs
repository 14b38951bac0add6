//! Serial against parallel: run the whole task set at several worker counts, several times
//! each, and report wall time with its spread, speed-up, efficiency, the Karp–Flatt serial
//! fraction and the ideal bound per setting.

pub mod export;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::PoolConfig;
use crate::engine::{self, RunError, RunOptions, Waker};
use crate::event::Event;
use crate::limits::MAX_WORKERS;
use crate::state::{RunState, TaskStatus};
use crate::taskdir::TaskDir;
use stats::Spread;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Worker counts to try, in order (1 = serial).
    pub workers: Vec<usize>,
    /// Timed runs per worker count.
    pub runs: usize,
    /// Untimed runs per worker count before the timed ones.
    pub warmup: usize,
    /// Everything but the worker count.
    pub config: PoolConfig,
    /// Folder for the runs' records and `bench.json`.
    pub out: PathBuf,
    pub output_cap: u64,
    pub guardian: Option<PathBuf>,
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub workers: usize,
    pub wall: f64,
    /// CPU seconds of the tasks (user, system), summed.
    pub user: f64,
    pub system: f64,
    /// Wall time of each task's final attempt.
    pub task_times: Vec<Duration>,
    /// CPU time (user + system) of each task's final attempt.
    pub task_cpu: Vec<Duration>,
    pub all_ok: bool,
    pub run_dir: PathBuf,
}

impl Sample {
    /// The serial time this run's task durations add up to.
    pub fn summed_task_time(&self) -> f64 {
        self.task_times.iter().map(Duration::as_secs_f64).sum()
    }

    fn of(workers: usize, state: &RunState, run_dir: PathBuf) -> Sample {
        let finals = state.tasks.iter().filter_map(|t| match t {
            TaskStatus::Finished { record } if record.is_final => Some(record),
            _ => None,
        });
        let mut sample = Sample {
            workers,
            wall: state.elapsed().as_secs_f64(),
            user: 0.0,
            system: 0.0,
            task_times: Vec::new(),
            task_cpu: Vec::new(),
            all_ok: state.counts().ok == state.tasks.len(),
            run_dir,
        };
        for a in finals {
            sample.task_times.push(a.wall());
            sample.task_cpu.push(a.user + a.system);
        }
        for a in &state.attempts {
            sample.user += a.user.as_secs_f64();
            sample.system += a.system.as_secs_f64();
        }
        sample
    }
}

/// What the runner reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A run starts: worker count, run number (1-based, warm-ups first), runs in all.
    Starting {
        workers: usize,
        run: usize,
        of: usize,
        warmup: bool,
    },
    /// An engine event of the run going on.
    Event(Event),
    /// A timed run ended.
    Done(Sample),
}

/// Per worker count, everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub workers: usize,
    /// Wall time of each timed run, seconds.
    pub times: Vec<f64>,
    pub spread: Spread,
    /// Mean CPU seconds of the tasks per run.
    pub user: f64,
    pub system: f64,
    /// 0 when every task of the run succeeded, else 1.
    pub exit_codes: Vec<i32>,
    /// Against the serial time (measured if 1 worker was run, else estimated).
    pub speedup: Option<f64>,
    pub efficiency: Option<f64>,
    pub karp_flatt: Option<f64>,
    /// The best wall time this worker count could reach, seconds.
    pub ideal: f64,
    /// Mean summed task time of this setting's runs: its estimate of the serial time.
    pub serial_estimate: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Vec<Setting>,
    /// Mean wall time with one worker, if measured.
    pub measured_serial: Option<f64>,
    /// Summed task time of the runs with the most workers: the serial time guessed
    /// without a serial run.
    pub estimated_serial: Option<f64>,
    pub cores: usize,
    pub load_average_before: Option<[f64; 3]>,
    pub version: String,
}

/// Run `plan` on `dir`, telling `progress` as it goes. Setting `stop` ends the benchmark
/// after the run going on.
pub fn run(
    dir: &TaskDir,
    plan: &Plan,
    waker: Option<Waker>,
    stop: Option<&std::sync::atomic::AtomicBool>,
    mut progress: impl FnMut(Progress),
) -> Result<Report, RunError> {
    let load = load_average();
    let mut samples = Vec::new();
    for &workers in &plan.workers {
        let total = plan.warmup + plan.runs;
        for k in 0..total {
            if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                break;
            }
            let warmup = k < plan.warmup;
            progress(Progress::Starting {
                workers,
                run: k + 1,
                of: total,
                warmup,
            });
            let run_dir = plan.out.join(format!(
                "w{workers}-{}{}",
                if warmup { "warmup" } else { "run" },
                if warmup { k + 1 } else { k + 1 - plan.warmup }
            ));
            let options = RunOptions {
                run_dir: Some(run_dir.clone()),
                resume: false,
                output_cap: plan.output_cap,
                guardian: plan.guardian.clone(),
                waker: waker.clone(),
                final_sweep: true,
            };
            let config = PoolConfig {
                workers,
                ..plan.config.clone()
            };
            let mut state = RunState::new();
            engine::run_to_end(dir, config, options, |event| {
                state.apply(event);
                progress(Progress::Event(event.clone()));
            })?;
            if !warmup {
                let sample = Sample::of(workers, &state, run_dir);
                progress(Progress::Done(sample.clone()));
                samples.push(sample);
            }
        }
    }
    Ok(report(&samples, crate::monitor::core_count(), load))
}

/// The report of `samples` (pure: the statistics are tested on known inputs).
pub fn report(samples: &[Sample], cores: usize, load: Option<[f64; 3]>) -> Report {
    let mut counts: Vec<usize> = samples.iter().map(|s| s.workers).collect();
    counts.dedup();
    let of = |w: usize| samples.iter().filter(move |s| s.workers == w);
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let measured_serial = mean(of(1).map(|s| s.wall).collect());
    let most = counts.iter().copied().max();
    let estimated_serial = most.and_then(|w| mean(of(w).map(Sample::summed_task_time).collect()));
    let reference = measured_serial.or(estimated_serial);
    // Task durations for the ideal bound: from the serial runs if there are any (no
    // contention), else from the runs with the fewest workers; averaged over their runs.
    let fewest = counts.iter().copied().min().unwrap_or(1);
    let basis: Vec<&Sample> = of(fewest).collect();
    let ideal = |w: usize| {
        let each: Vec<f64> = basis
            .iter()
            .map(|s| stats::ideal(&s.task_times, &s.task_cpu, w, cores))
            .collect();
        mean(each).unwrap_or(0.0)
    };
    let settings = counts
        .iter()
        .filter_map(|&w| {
            let times: Vec<f64> = of(w).map(|s| s.wall).collect();
            let spread = Spread::of(&times)?;
            let speedup = reference.and_then(|r| stats::speedup(r, spread.mean));
            Some(Setting {
                workers: w,
                spread,
                user: mean(of(w).map(|s| s.user).collect()).unwrap_or(0.0),
                system: mean(of(w).map(|s| s.system).collect()).unwrap_or(0.0),
                exit_codes: of(w).map(|s| i32::from(!s.all_ok)).collect(),
                speedup,
                efficiency: speedup.map(|s| s / w as f64),
                karp_flatt: speedup.and_then(|s| stats::karp_flatt(s, w)),
                ideal: ideal(w),
                serial_estimate: mean(of(w).map(Sample::summed_task_time).collect()).unwrap_or(0.0),
                times,
            })
        })
        .collect();
    Report {
        settings,
        measured_serial,
        estimated_serial,
        cores,
        load_average_before: load,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The worker counts a benchmark takes when none are given: 1 (the serial run), the
/// number of cores, and the manifest's `workers` if it says; each once, smallest first,
/// and at least two.
pub fn default_workers(manifest: Option<usize>) -> Vec<usize> {
    let mut counts = vec![1, crate::monitor::core_count().max(1)];
    counts.extend(manifest);
    counts.sort_unstable();
    counts.dedup();
    if counts.len() == 1 {
        counts.push(2);
    }
    counts
}

/// Parse worker counts: `1,2,4,8`, ranges `1..=16`, `2..4` (end excluded) and `1-4`.
pub fn parse_workers(text: &str) -> Result<Vec<usize>, String> {
    let bad = |item: &str| {
        format!(
            "`{}` is not a worker count; write counts from 1 to {MAX_WORKERS} like 1,2,4,8 or a range like 1..=8",
            crate::human::excerpt(item)
        )
    };
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let range = if let Some((a, b)) = item.split_once("..=") {
            Some((a, b, true))
        } else if let Some((a, b)) = item.split_once("..") {
            Some((a, b, false))
        } else {
            item.split_once('-').map(|(a, b)| (a, b, true))
        };
        match range {
            Some((a, b, inclusive)) => {
                let a: usize = a.trim().parse().map_err(|_| bad(item))?;
                let b: usize = b.trim().parse().map_err(|_| bad(item))?;
                let end = if inclusive { b } else { b.saturating_sub(1) };
                if a == 0 || end < a || end > MAX_WORKERS {
                    return Err(bad(item));
                }
                out.extend(a..=end);
            }
            None => {
                let n: usize = item.parse().map_err(|_| bad(item))?;
                if n == 0 || n > MAX_WORKERS {
                    return Err(bad(item));
                }
                out.push(n);
            }
        }
    }
    if out.is_empty() {
        return Err("--workers lists no worker count; write e.g. 1,2,4,8".to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|w| seen.insert(*w));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(workers: usize, wall: f64, tasks: &[f64]) -> Sample {
        Sample {
            workers,
            wall,
            user: 0.5,
            system: 0.1,
            task_times: tasks.iter().map(|&t| Duration::from_secs_f64(t)).collect(),
            task_cpu: tasks.iter().map(|&t| Duration::from_secs_f64(t)).collect(),
            all_ok: true,
            run_dir: PathBuf::new(),
        }
    }

    #[test]
    fn worker_lists_and_ranges() {
        assert_eq!(parse_workers("1,2,4,8"), Ok(vec![1, 2, 4, 8]));
        assert_eq!(parse_workers("1..=4"), Ok(vec![1, 2, 3, 4]));
        assert_eq!(parse_workers("2..4, 8"), Ok(vec![2, 3, 8]));
        assert_eq!(parse_workers("1-3,2"), Ok(vec![1, 2, 3]));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("4..=2").is_err());
        assert!(parse_workers("lots").is_err());
    }

    #[test]
    fn report_against_a_measured_serial_run() {
        let tasks = [1.0; 20];
        let samples = [
            sample(1, 20.0, &tasks),
            sample(1, 20.2, &tasks),
            sample(5, 4.0, &tasks),
            sample(5, 4.1, &tasks),
        ];
        let r = report(&samples, 8, None);
        assert_eq!(r.measured_serial, Some(20.1));
        assert_eq!(r.estimated_serial, Some(20.0));
        let five = &r.settings[1];
        assert_eq!(five.workers, 5);
        assert!((five.spread.mean - 4.05).abs() < 1e-12);
        let s = five.speedup.expect("speed-up");
        assert!((s - 20.1 / 4.05).abs() < 1e-12);
        assert!((five.efficiency.expect("efficiency") - s / 5.0).abs() < 1e-12);
        assert_eq!(five.ideal, 4.0);
        assert_eq!(r.settings[0].karp_flatt, None);
        assert!(five.karp_flatt.expect("defined") < 0.01);
    }

    #[test]
    fn without_a_serial_run_speed_up_uses_the_estimate() {
        let samples = [sample(4, 5.0, &[4.0, 4.0, 4.0, 4.0, 4.0])];
        let r = report(&samples, 4, None);
        assert_eq!(r.measured_serial, None);
        assert_eq!(r.estimated_serial, Some(20.0));
        assert_eq!(r.settings[0].speedup, Some(4.0));
    }
}
