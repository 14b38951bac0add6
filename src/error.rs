//! Errors a user can act on. Each one is a sentence that says what went wrong, where, and
//! what to do about it, on one line: paths and messages are shown with their control
//! characters escaped ([`crate::human::one_line`]).

use std::path::{Path, PathBuf};

use crate::human::one_line;

/// Characters of a sentence at most (what it quotes is cut short before that).
const SENTENCE_CHARS: usize = 1000;

/// A task directory or its manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("task directory `{}` does not exist; check the path, or create it and put tasks in it", path_shown(.0))]
    Missing(PathBuf),

    #[error("`{}` is not a directory; give the folder that holds the tasks (and its poolscope.toml, if any)", path_shown(.0))]
    NotADirectory(PathBuf),

    #[error(
        "`{}` ends in `/`, but `{}` is a file, not a directory; give the folder that holds the tasks",
        path_shown(dir),
        path_shown(file)
    )]
    FileWithSlash { dir: PathBuf, file: PathBuf },

    #[error("`{}` leads through a symbolic link that loops back on itself; point the link at the task directory", path_shown(.0))]
    LinkLoop(PathBuf),

    #[error("cannot read `{}`: {source}", path_shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{}:{line}:{column}: {}",
        path_shown(path),
        one_line(message, SENTENCE_CHARS)
    )]
    Manifest {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "task directory `{}` has no task: {}",
        path_shown(dir),
        one_line(why, SENTENCE_CHARS)
    )]
    NoTasks { dir: PathBuf, why: String },

    #[error(
        "task directory `{}` has {count} tasks, more than poolscope's {}; split them over several directories or runs",
        path_shown(dir),
        crate::limits::MAX_TASKS
    )]
    TooManyTasks { dir: PathBuf, count: usize },

    /// The Python function of `[worker]` (or its `init`) cannot be loaded: the sentence,
    /// located at the manifest's key, then on the lines after it the traceback.
    #[error(
        "{}:{line}:{column}: {}{}",
        path_shown(path),
        one_line(message, SENTENCE_CHARS),
        after_lines(traceback)
    )]
    Worker {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        traceback: String,
    },
}

/// `path` in a sentence: on one line.
fn path_shown(path: &Path) -> String {
    one_line(&path.display().to_string(), usize::MAX)
}

/// `text` on the lines after a sentence: empty, or a line break and `text` without its
/// last line break.
fn after_lines(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!("\n{text}")
    }
}

impl LoadError {
    /// A manifest error located at byte `offset` of `source`.
    pub fn at(path: PathBuf, source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(source, offset);
        LoadError::Manifest {
            path,
            line,
            column,
            message: message.into(),
        }
    }

    /// A `[worker]` function that cannot be loaded, located at byte `offset` of `source`.
    pub fn worker_at(
        path: PathBuf,
        source: &str,
        offset: usize,
        message: impl Into<String>,
        traceback: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(source, offset);
        LoadError::Worker {
            path,
            line,
            column,
            message: message.into(),
            traceback: traceback.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 8), (2, 3));
    }
}
