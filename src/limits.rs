//! The largest values poolscope takes from a manifest or the command line. Anything larger
//! is bad input, refused at load with a sentence (README, "Limits").

use std::time::Duration;

/// The longest duration (any timeout): one year, as `"1y"` counts it (365.25 days).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);
