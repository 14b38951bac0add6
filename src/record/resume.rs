//! `--resume`: which tasks an earlier run into the same run directory finished, read from
//! the successful lines of its joblog (DESIGN §5).
//!
//! A line belongs to a task when its Seq and its Command both match; the Command is what
//! [`joblog::line`] writes for the task, in whichever slot ran it (a command that holds
//! `{%}` matches with any slot number). When some successful line matches no task that
//! way, the task list changed since (a file added, removed or renamed renumbers the tasks
//! after it; a command changed; the list got shorter), and the lines left over are
//! matched by their Command alone: each to one task not done yet, the first by number.
//! Tasks added after the last renumber nothing and are no change. A command that holds
//! `{#}` changes with its number, so a renumbered task of that kind runs again.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::joblog;
use crate::task::Task;

/// What an earlier run finished.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The numbers of the tasks not to run again.
    pub done: BTreeSet<usize>,
    /// Some successful line matched no task by its Seq and Command: the lines were matched
    /// by their Command alone.
    pub list_changed: bool,
}

/// What the joblog at `path` says `tasks` finished. A missing joblog finished nothing.
pub fn finished(path: &Path, tasks: &[Arc<Task>]) -> io::Result<Finished> {
    Ok(match_lines(&joblog::successes(path)?, tasks))
}

/// Match successful lines (Seq, Command) to `tasks`, numbered from 1 in order.
fn match_lines(lines: &[(usize, String)], tasks: &[Arc<Task>]) -> Finished {
    let mut done = BTreeSet::new();
    let mut left = Vec::new();
    for (seq, command) in lines {
        let same = seq
            .checked_sub(1)
            .and_then(|i| tasks.get(i))
            .is_some_and(|t| Column::of(t).matches(command));
        if same {
            done.insert(*seq);
        } else {
            left.push(command.as_str());
        }
    }
    let list_changed = !left.is_empty();
    if list_changed {
        let mut index = Index::of(tasks);
        for command in left {
            if let Some(seq) = index.take(command, &done) {
                done.insert(seq);
            }
        }
    }
    Finished { done, list_changed }
}

/// What a task's joblog line holds in its Command column.
enum Column {
    /// The command holds no `{%}`: this text.
    Exact(String),
    /// The text before, between and after the slot numbers.
    Slotted(Vec<String>),
}

impl Column {
    fn of(task: &Task) -> Column {
        if !task.uses_slot() {
            let text = task.command_text(Some(1));
            return Column::Exact(joblog::command_column(&text).into_owned());
        }
        // A slot number that stands out: digits are never quoted, whatever their value.
        let probe = usize::MAX;
        let text = task.command_text(Some(probe));
        let text = joblog::command_column(&text);
        Column::Slotted(text.split(&probe.to_string()).map(str::to_string).collect())
    }

    fn matches(&self, column: &str) -> bool {
        match self {
            Column::Exact(text) => text == column,
            Column::Slotted(pieces) => {
                let Some(rest) = column.strip_prefix(pieces[0].as_str()) else {
                    return false;
                };
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                (1..=digits).any(|len| joined(column, pieces, &rest[..len]))
            }
        }
    }
}

/// Is `column` the `pieces` with `slot` between each two?
fn joined(column: &str, pieces: &[String], slot: &str) -> bool {
    let mut rest = column;
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            let Some(r) = rest.strip_prefix(slot) else {
                return false;
            };
            rest = r;
        }
        let Some(r) = rest.strip_prefix(piece.as_str()) else {
            return false;
        };
        rest = r;
    }
    rest.is_empty()
}

/// Which runs of digits of a command hold a slot number (their indexes), and the command
/// with those runs masked.
type SlotKey = (Vec<usize>, String);

/// The tasks by their Command column, to match lines by Command alone.
struct Index {
    /// Commands without `{%}`: the task numbers of each, last first.
    exact: HashMap<String, Vec<usize>>,
    /// Commands with `{%}`, by their [`SlotKey`]: the tasks, last first.
    slotted: HashMap<SlotKey, Vec<(usize, Column)>>,
    /// The masks of `slotted`, each once.
    masks: Vec<Vec<usize>>,
}

impl Index {
    fn of(tasks: &[Arc<Task>]) -> Index {
        let mut index = Index {
            exact: HashMap::new(),
            slotted: HashMap::new(),
            masks: Vec::new(),
        };
        for task in tasks.iter().rev() {
            match Column::of(task) {
                Column::Exact(text) => index.exact.entry(text).or_default().push(task.seq),
                Column::Slotted(pieces) => {
                    let mut text = String::new();
                    let mut slots = Vec::new();
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            slots.push(text.len());
                            text.push('1');
                        }
                        text.push_str(piece);
                    }
                    let runs = digit_runs(&text);
                    let mask: Vec<usize> = (0..runs.len())
                        .filter(|&r| slots.iter().any(|s| runs[r].contains(s)))
                        .collect();
                    let key = masked(&text, &runs, &mask);
                    if !index.masks.contains(&mask) {
                        index.masks.push(mask.clone());
                    }
                    let column = Column::Slotted(pieces);
                    index
                        .slotted
                        .entry((mask, key))
                        .or_default()
                        .push((task.seq, column));
                }
            }
        }
        index
    }

    /// The first task not `done` whose line `command` would be, taken out of the index.
    fn take(&mut self, command: &str, done: &BTreeSet<usize>) -> Option<usize> {
        if let Some(seqs) = self.exact.get_mut(command) {
            while let Some(seq) = seqs.pop() {
                if !done.contains(&seq) {
                    return Some(seq);
                }
            }
            return None;
        }
        let runs = digit_runs(command);
        for mask in &self.masks {
            if mask.iter().any(|&r| r >= runs.len()) {
                continue;
            }
            let key = (mask.clone(), masked(command, &runs, mask));
            let Some(tasks) = self.slotted.get_mut(&key) else {
                continue;
            };
            let found = tasks
                .iter()
                .rposition(|(seq, column)| !done.contains(seq) && column.matches(command));
            if let Some(at) = found {
                return Some(tasks.remove(at).0);
            }
        }
        None
    }
}

/// Where `text` has runs of ASCII digits.
fn digit_runs(text: &str) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, b) in text.bytes().enumerate() {
        if b.is_ascii_digit() {
            match runs.last_mut() {
                Some(run) if run.end == i => run.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
    }
    runs
}

/// `text` with the runs of digits named by `mask` (indexes into `runs`) as NUL each.
fn masked(text: &str, runs: &[Range<usize>], mask: &[usize]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for &r in mask {
        out.push_str(&text[from..runs[r].start]);
        out.push('\0');
        from = runs[r].end;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::task::Program;

    fn tasks(programs: &[Program]) -> Vec<Arc<Task>> {
        programs
            .iter()
            .enumerate()
            .map(|(i, program)| {
                Arc::new(Task {
                    seq: i + 1,
                    name: String::new(),
                    program: program.clone(),
                    input: format!("in{}", i + 1).into(),
                    env: vec![],
                    cwd: PathBuf::from("/"),
                    timeout: None,
                })
            })
            .collect()
    }

    fn sh(line: &str) -> Program {
        Program::Shell(line.to_string())
    }

    fn lines(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
        pairs.iter().map(|(n, c)| (*n, c.to_string())).collect()
    }

    fn done(f: &Finished) -> Vec<usize> {
        f.done.iter().copied().collect()
    }

    #[test]
    fn a_line_counts_for_the_task_with_its_seq_and_command() {
        let t = tasks(&[sh("a"), sh("b"), sh("c")]);
        let f = match_lines(&lines(&[(1, "a"), (3, "c")]), &t);
        assert_eq!(done(&f), [1, 3]);
        assert!(!f.list_changed);
        let f = match_lines(&[], &t);
        assert_eq!(f, Finished::default());
    }

    #[test]
    fn a_changed_list_is_matched_by_command_alone() {
        // b and c were 1 and 2; a new task sorts first.
        let t = tasks(&[sh("new"), sh("b"), sh("c")]);
        let f = match_lines(&lines(&[(1, "b"), (2, "c")]), &t);
        assert_eq!(done(&f), [2, 3]);
        assert!(f.list_changed);
        // A line whose task is gone is a change, and matches nothing.
        let f = match_lines(&lines(&[(1, "new"), (4, "gone")]), &t);
        assert_eq!(done(&f), [1]);
        assert!(f.list_changed);
    }

    #[test]
    fn tasks_added_at_the_end_are_no_change() {
        let t = tasks(&[sh("a"), sh("b"), sh("c")]);
        let f = match_lines(&lines(&[(1, "a"), (2, "b")]), &t);
        assert_eq!(done(&f), [1, 2]);
        assert!(!f.list_changed);
    }

    #[test]
    fn each_line_counts_for_one_task_of_its_command() {
        let t = tasks(&[sh("same"), sh("same"), sh("same"), sh("other")]);
        // Two of three equal commands had run as 2 and 3 of a list that lost its first.
        let f = match_lines(&lines(&[(3, "same"), (4, "same"), (5, "other")]), &t);
        assert_eq!(done(&f), [1, 3, 4]);
        assert!(f.list_changed);
    }

    #[test]
    fn the_command_is_compared_as_the_joblog_writes_it() {
        let t = tasks(&[sh("printf 'a\tb\nc'"), Program::Item("\"x\\ty\"".into())]);
        let f = match_lines(&lines(&[(1, "printf 'a b c'"), (2, "\"x\\ty\"")]), &t);
        assert_eq!(done(&f), [1, 2]);
        assert!(!f.list_changed);
        let f = match_lines(&lines(&[(1, "printf 'a\tb\nc'")]), &t);
        assert!(f.done.is_empty() && f.list_changed);
    }

    #[test]
    fn a_slot_in_the_command_matches_any_slot_number() {
        let t = tasks(&[sh("w {} {%} x{%}"), sh("w {} {%}0"), sh("v {%}")]);
        let f = match_lines(&lines(&[(1, "w in1 12 x12"), (2, "w in2 30")]), &t);
        assert_eq!(done(&f), [1, 2]);
        assert!(!f.list_changed);
        let f = match_lines(&lines(&[(1, "w in1 1 x2"), (2, "w in2 3")]), &t);
        assert!(f.done.is_empty(), "one slot number, and the text around it");
        // Renumbered: by command alone, with any slot.
        let f = match_lines(
            &lines(&[(9, "w in2 70"), (8, "v 4"), (7, "w in1 5 x5")]),
            &t,
        );
        assert_eq!(done(&f), [1, 2, 3]);
        assert!(f.list_changed);
        let f = match_lines(&lines(&[(9, "w in2 7"), (8, "v x")]), &t);
        assert!(f.done.is_empty());
    }

    #[test]
    fn resume_reads_the_joblog() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(joblog::FILE);
        let t = tasks(&[sh("a"), sh("b")]);
        assert_eq!(finished(&path, &t)?, Finished::default(), "no joblog");
        std::fs::write(
            &path,
            format!("{}2\t:\t1.000\t     0.100\t0\t0\t0\t0\tb\n", joblog::HEADER),
        )?;
        assert_eq!(done(&finished(&path, &t)?), [2]);
        Ok(())
    }
}
