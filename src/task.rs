//! A task: one command to run, with the values its replacement strings refer to.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::template::{self, Values};

/// How a task's command is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Program {
    /// An argv template, run without a shell; each element expands to one argument.
    Argv(Vec<String>),
    /// A shell line template, run with `/bin/sh -c`; substituted values are quoted.
    Shell(String),
    /// An argv run exactly as given, without replacement strings (discovered files, whose
    /// names are bytes).
    Literal(Vec<OsString>),
    /// A work item for a persistent worker, as JSON text (DESIGN §3).
    Item(String),
}

/// One task of a task directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Task number, 1-based, in listed order (`{#}`, the joblog's Seq).
    pub seq: usize,
    /// A short name for people: the manifest's `name`, the input, or the file name.
    pub name: String,
    /// The command template.
    pub program: Program,
    /// The input (`{}`), empty for tasks without one; a file name's bytes.
    pub input: OsString,
    /// Extra environment, on top of poolscope's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory (absolute).
    pub cwd: PathBuf,
    /// Per-attempt time limit overriding the pool's.
    pub timeout: Option<Duration>,
}

impl Task {
    fn values(&self, slot: Option<usize>) -> Values<'_> {
        Values {
            input: &self.input,
            seq: self.seq,
            slot,
        }
    }

    /// The argv to execute in worker slot `slot` (1-based); `None` leaves `{%}` unexpanded.
    pub fn argv(&self, slot: Option<usize>) -> Vec<OsString> {
        let values = self.values(slot);
        match &self.program {
            Program::Argv(args) => args
                .iter()
                .map(|a| template::expand_arg(a, values))
                .collect(),
            Program::Shell(line) => vec![
                "/bin/sh".into(),
                "-c".into(),
                template::expand_shell(line, values),
            ],
            Program::Literal(args) => args.clone(),
            Program::Item(json) => vec![json.into()],
        }
    }

    /// The item sent to a persistent worker (JSON text), if this is a worker task.
    pub fn item(&self) -> Option<&str> {
        match &self.program {
            Program::Item(json) => Some(json),
            _ => None,
        }
    }

    /// Does the command hold the worker slot (`{%}`), so that it differs from slot to slot?
    pub fn uses_slot(&self) -> bool {
        match &self.program {
            Program::Argv(args) => args.iter().any(|a| template::refers_to_slot(a)),
            Program::Shell(line) => template::refers_to_slot(line),
            Program::Literal(_) | Program::Item(_) => false,
        }
    }

    /// The command as one line for people and the joblog.
    pub fn command_line(&self, slot: Option<usize>) -> String {
        self.command_text(slot).into_owned()
    }

    /// [`Task::command_line`], borrowed where nothing needs expanding (a worker's item).
    pub fn command_text(&self, slot: Option<usize>) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        Cow::Owned(match &self.program {
            Program::Argv(_) | Program::Literal(_) => template::join_argv(&self.argv(slot)),
            Program::Shell(line) => {
                crate::human::name(&template::expand_shell(line, self.values(slot)))
            }
            Program::Item(json) => return Cow::Borrowed(json),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(program: Program, input: &str) -> Task {
        Task {
            seq: 3,
            name: input.to_string(),
            program,
            input: input.into(),
            env: vec![],
            cwd: PathBuf::from("/"),
            timeout: None,
        }
    }

    #[test]
    fn argv_keeps_hostile_input_as_one_argument() {
        let hostile = "a b; rm -rf ~ $(x).jpg";
        let t = task(
            Program::Argv(vec!["convert".into(), "{}".into(), "out/{/.}.png".into()]),
            hostile,
        );
        assert_eq!(
            t.argv(Some(1)),
            vec!["convert", hostile, "out/a b; rm -rf ~ $(x).png"]
        );
    }

    #[test]
    fn shell_line_quotes_input() {
        let t = task(Program::Shell("echo {} {#} {%}".into()), "$(x)");
        assert_eq!(t.argv(Some(2))[2], "echo '$(x)' 3 2");
        assert_eq!(t.command_line(None), "echo '$(x)' 3 {%}");
        assert!(t.uses_slot());
        assert!(!task(Program::Shell("echo {} {#} %".into()), "{%}").uses_slot());
    }
}
