//! Durations remembered from a directory's previous run, for `order = "longest-first"`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::summary::{self, Summary};

/// Wall time per task name from the latest run of `root` that left a summary.
pub fn previous_durations(root: &Path) -> BTreeMap<String, Duration> {
    let Some(run) = super::rundir::latest_run(root) else {
        return BTreeMap::new();
    };
    let Ok(text) = std::fs::read_to_string(run.join(summary::FILE)) else {
        return BTreeMap::new();
    };
    let Ok(summary) = serde_json::from_str::<Summary>(&text) else {
        return BTreeMap::new();
    };
    summary
        .tasks
        .into_iter()
        .filter_map(|t| Some((t.name, Duration::try_from_secs_f64(t.wall_seconds?).ok()?)))
        .collect()
}
