//! What the app remembers between launches.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many recent directories the app lists.
const RECENT: usize = 10;

/// Saved settings: kept apart from everything that lives only while the app runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Task directories opened lately, the newest first.
    pub recent: Vec<PathBuf>,
    /// The timeline shows one lane per CPU core instead of one per worker slot.
    pub per_core_lanes: bool,
}

impl Settings {
    /// Put `dir` first in the recent list.
    pub fn remember(&mut self, dir: &Path) {
        self.recent.retain(|d| d != dir);
        self.recent.insert(0, dir.to_path_buf());
        self.recent.truncate(RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_directories_are_unique_and_newest_first() {
        let mut s = Settings::default();
        for d in ["/a", "/b", "/a"] {
            s.remember(Path::new(d));
        }
        assert_eq!(s.recent, [PathBuf::from("/a"), PathBuf::from("/b")]);
        for i in 0..20 {
            s.remember(Path::new(&format!("/d{i}")));
        }
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent[0], PathBuf::from("/d19"));
    }
}
