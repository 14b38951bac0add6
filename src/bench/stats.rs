//! Statistics of a benchmark: spread of wall times, speed-up, efficiency, the Karp–Flatt
//! serial fraction, and the ideal bound for a worker count.

use std::time::Duration;

use serde::Serialize;

/// Summary of repeated wall times, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single run.
    pub stddev: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no times.
    pub fn of(times: &[f64]) -> Option<Spread> {
        if times.is_empty() {
            return None;
        }
        let n = times.len() as f64;
        let mean = times.iter().sum::<f64>() / n;
        let stddev = if times.len() > 1 {
            (times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Some(Spread {
            mean,
            stddev,
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Speed-up of `parallel` over `serial` (mean times).
pub fn speedup(serial: f64, parallel: f64) -> Option<f64> {
    (parallel > 0.0).then(|| serial / parallel)
}

/// Karp–Flatt experimentally determined serial fraction: `(1/S − 1/p) / (1 − 1/p)`;
/// undefined for one worker.
pub fn karp_flatt(speedup: f64, workers: usize) -> Option<f64> {
    if workers < 2 || speedup <= 0.0 {
        return None;
    }
    let p = workers as f64;
    Some((1.0 / speedup - 1.0 / p) / (1.0 - 1.0 / p))
}

/// The best wall time `workers` could reach: the largest of the summed task time spread
/// over `workers`, the summed CPU time of the tasks spread over `min(workers, cores)`, and
/// the longest task. For CPU-bound tasks the middle term is the summed task time over
/// `min(workers, cores)`; tasks that wait (sleep, I/O) are not bounded by the cores.
pub fn ideal(task_times: &[Duration], task_cpu: &[Duration], workers: usize, cores: usize) -> f64 {
    let sum = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).sum::<f64>();
    let longest = task_times
        .iter()
        .map(Duration::as_secs_f64)
        .fold(0.0, f64::max);
    let by_workers = sum(task_times) / workers.max(1) as f64;
    let by_cores = sum(task_cpu) / workers.min(cores).max(1) as f64;
    by_workers.max(by_cores).max(longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_known_times() {
        let s = Spread::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).expect("times");
        assert_eq!(s.mean, 5.0);
        // Sample standard deviation: sqrt(32 / 7).
        assert!((s.stddev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.median, 4.5);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        let one = Spread::of(&[3.0]).expect("one");
        assert_eq!((one.mean, one.stddev, one.median), (3.0, 0.0, 3.0));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn karp_flatt_of_perfect_and_serial_runs() {
        assert_eq!(karp_flatt(4.0, 4), Some(0.0));
        // No speed-up at all: everything is serial.
        assert!((karp_flatt(1.0, 4).expect("defined") - 1.0).abs() < 1e-12);
        // S = 3 on 4 workers: (1/3 - 1/4) / (3/4) = 1/9.
        assert!((karp_flatt(3.0, 4).expect("defined") - 1.0 / 9.0).abs() < 1e-12);
        assert_eq!(karp_flatt(1.0, 1), None);
    }

    #[test]
    fn ideal_is_bounded_by_cores_and_the_longest_task() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let busy = ms(&[1000; 20]);
        let idle = ms(&[0; 20]);
        // 20 × 1 s of CPU on 5 workers and plenty of cores: 4 s.
        assert_eq!(ideal(&busy, &busy, 5, 64), 4.0);
        // Only 2 cores: CPU-bound work cannot spread over more than 2.
        assert_eq!(ideal(&busy, &busy, 5, 2), 10.0);
        // Sleeping tasks are not bounded by the cores.
        assert_eq!(ideal(&busy, &idle, 5, 2), 4.0);
        // One long task bounds everything.
        let three = ms(&[9000, 1000, 1000]);
        assert_eq!(ideal(&three, &three, 8, 8), 9.0);
        assert_eq!(speedup(20.0, 4.0), Some(5.0));
    }
}
