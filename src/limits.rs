//! The largest values poolscope takes from a manifest or the command line. Anything larger
//! is bad input, refused at load with a sentence (README, "Limits").

use std::time::Duration;

/// The longest duration (any timeout): one year, as `"1y"` counts it (365.25 days).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// The most worker slots a pool may have (`workers`, `-j`, `bench --workers`). A run has
/// no more slots than tasks to run, however many it is given.
pub const MAX_WORKERS: usize = 4096;

/// The most extra attempts of a task after a failure (`retries`, `--retries`).
pub const MAX_RETRIES: u32 = 100;

/// The most tasks a task directory may hold, `[each]`'s inputs or range included.
pub const MAX_TASKS: usize = 1_000_000;
