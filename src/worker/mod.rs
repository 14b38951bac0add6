//! Persistent workers (DESIGN §3): what `[worker]` asks for, the protocol they speak, the
//! Python adapter poolscope ships, and the kernels built into poolscope's own binary.
//!
//! The engine side, which starts workers and feeds them items, is
//! [`crate::engine::workers`].

pub mod check;
pub mod kernel;
pub mod long_reply;
pub mod protocol;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The Python adapter, run as `python3 -c ADAPTER FILE.py:FUNCTION [FILE.py:INIT]`.
pub const ADAPTER: &str = include_str!("adapter.py");

/// Default cap of a saved result (`[worker] max_result`): past it a result is cut and
/// marked truncated.
pub const DEFAULT_MAX_RESULT: u64 = 16 << 20;

/// A result up to this size is held in the records (`results.jsonl`, `summary.json`); a
/// larger one is saved to a file of its own, `outputs/N.result`, as its reply arrives.
/// A reply line up to this size is also read whole; a longer one is read in pieces.
pub const HELD_RESULT: usize = 64 << 10;

/// The hidden subcommand of the `poolscope` binary that serves a built-in kernel.
pub const KERNEL_SUBCOMMAND: &str = "__worker";

/// A kernel built into poolscope, for demos and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// Returns its input at once.
    Noop,
    /// Sleeps for input seconds.
    Sleep,
    /// Counts the primes up to input.
    Primes,
    /// Keeps a core busy for input milliseconds.
    Spin,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [Kernel::Noop, Kernel::Sleep, Kernel::Primes, Kernel::Spin];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Noop => "noop",
            Kernel::Sleep => "sleep",
            Kernel::Primes => "primes",
            Kernel::Spin => "spin",
        }
    }

    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A Python function named as `file.py:function`, the file relative to the task directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PyFunction {
    /// The file as written in the manifest.
    pub file: String,
    pub function: String,
}

impl PyFunction {
    /// Parse `file.py:function`.
    pub fn parse(spec: &str) -> Result<PyFunction, String> {
        match spec.rsplit_once(':') {
            Some((file, function))
                if !file.is_empty()
                    && !function.is_empty()
                    && function.chars().all(|c| c == '_' || c.is_alphanumeric()) =>
            {
                Ok(PyFunction {
                    file: file.to_string(),
                    function: function.to_string(),
                })
            }
            _ => Err(format!(
                "`{}` does not name a Python function; write \"file.py:function\"",
                crate::human::excerpt(spec)
            )),
        }
    }

    /// `file.py:function`.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.file, self.function)
    }
}

/// What runs as a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerProgram {
    /// A Python function called through the adapter, with an optional `init` function.
    Python {
        function: PyFunction,
        init: Option<PyFunction>,
    },
    /// Any program that speaks the protocol.
    Cmd(Vec<String>),
    /// A kernel of poolscope's own binary.
    Builtin(Kernel),
}

/// `[worker]`, resolved against the task directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerSpec {
    pub program: WorkerProgram,
    /// Where workers run: the task directory.
    pub cwd: PathBuf,
    /// Extra environment for every worker.
    pub env: Vec<(String, String)>,
    /// A worker that has not said it is ready this long after it started is killed, and
    /// its start counts as failed.
    pub ready_timeout: Duration,
    /// Cap of a saved result, bytes (`[worker] max_result`).
    pub max_result: u64,
}

/// How long a worker may take to say it is ready, unless `[worker] ready_timeout` says.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl WorkerSpec {
    /// The argv that starts one worker; `poolscope` is the executable serving kernels.
    pub fn argv(&self, poolscope: &Path) -> Vec<OsString> {
        match &self.program {
            WorkerProgram::Python { function, init } => {
                let mut argv: Vec<OsString> = vec![
                    "python3".into(),
                    "-c".into(),
                    ADAPTER.into(),
                    function.spec().into(),
                ];
                if let Some(init) = init {
                    argv.push(init.spec().into());
                }
                argv
            }
            WorkerProgram::Cmd(argv) => argv.iter().map(OsString::from).collect(),
            WorkerProgram::Builtin(kernel) => vec![
                poolscope.as_os_str().to_owned(),
                KERNEL_SUBCOMMAND.into(),
                kernel.name().into(),
            ],
        }
    }

    /// A short name for people and the joblog: `work.py:process`, `./my-worker`, `noop`.
    pub fn label(&self) -> String {
        match &self.program {
            WorkerProgram::Python { function, .. } => function.spec(),
            WorkerProgram::Cmd(argv) => crate::template::join_argv(argv),
            WorkerProgram::Builtin(kernel) => kernel.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_functions_parse() {
        let f = PyFunction::parse("lib/work.py:process").expect("parses");
        assert_eq!(f.file, "lib/work.py");
        assert_eq!(f.function, "process");
        assert!(PyFunction::parse("work.py").is_err());
        assert!(PyFunction::parse("work.py:").is_err());
        assert!(PyFunction::parse("work.py:a-b").is_err());
    }

    #[test]
    fn kernels_by_name() {
        for k in Kernel::ALL {
            assert_eq!(Kernel::from_name(k.name()), Some(k));
        }
        assert_eq!(Kernel::from_name("nope"), None);
    }
}
