//! `poolscope.toml`: the serde model of the manifest. Unknown keys are errors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::config::{self, PoolSettings, Whole};

/// The manifest as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: Option<String>,
    #[serde(default)]
    pub pool: PoolSettings,
    #[serde(default)]
    pub task: Vec<Spanned<TaskTable>>,
    pub each: Option<Spanned<EachTable>>,
    pub worker: Option<Spanned<WorkerTable>>,
}

/// `[worker]`: persistent workers fed one item per task (DESIGN §3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerTable {
    /// `"file.py:function"`, called through poolscope's Python adapter.
    pub python: Option<Spanned<String>>,
    /// Any program that speaks the worker protocol.
    pub cmd: Option<Spanned<Vec<String>>>,
    /// A kernel built into poolscope.
    pub builtin: Option<Spanned<String>>,
    /// `"file.py:function"` run once in each Python worker before its first item.
    pub init: Option<Spanned<String>>,
    /// Recycle a worker after this many items (overrides `[pool]`).
    pub max_tasks_per_worker: Option<Spanned<u32>>,
    /// Per item: past it the worker is killed and replaced, and the item times out.
    pub timeout: Option<HumanDuration>,
    /// How long a worker may take to say it is ready (default [`READY_TIMEOUT`]).
    ///
    /// [`READY_TIMEOUT`]: crate::worker::READY_TIMEOUT
    pub ready_timeout: Option<HumanDuration>,
    /// Cap of a saved result (the rest is dropped and the result marked truncated).
    pub max_result: Option<HumanSize>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `[[task]]`: one task listed by hand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTable {
    pub name: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub sh: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<Spanned<String>>,
    pub timeout: Option<HumanDuration>,
}

/// `[each]`: one task per input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EachTable {
    pub inputs: Option<Spanned<Inputs>>,
    pub range: Option<Spanned<Range>>,
    pub cmd: Option<Vec<String>>,
    pub sh: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<Spanned<String>>,
    pub timeout: Option<HumanDuration>,
}

/// The keys `[[task]]` and `[each]` share, borrowed from either table.
#[derive(Debug, Clone, Copy)]
pub struct RunKeys<'a> {
    pub cmd: Option<&'a Vec<String>>,
    pub sh: Option<&'a Spanned<String>>,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a Spanned<String>>,
    pub timeout: Option<HumanDuration>,
}

impl TaskTable {
    pub fn run_keys(&self) -> RunKeys<'_> {
        RunKeys {
            cmd: self.cmd.as_ref(),
            sh: self.sh.as_ref(),
            env: &self.env,
            cwd: self.cwd.as_ref(),
            timeout: self.timeout,
        }
    }
}

impl EachTable {
    pub fn run_keys(&self) -> RunKeys<'_> {
        RunKeys {
            cmd: self.cmd.as_ref(),
            sh: self.sh.as_ref(),
            env: &self.env,
            cwd: self.cwd.as_ref(),
            timeout: self.timeout,
        }
    }
}

/// `inputs = "glob/*.jpg"` or `inputs = ["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    Glob(String),
    List(Vec<String>),
}

/// `range = [first, last]`: exactly two integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub first: i64,
    pub last: i64,
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bounds = Vec::<Whole<i64>>::deserialize(d)?;
        if bounds.iter().any(|b| matches!(b, Whole::Other(_))) {
            return Err(serde::de::Error::custom(
                "`range` takes two whole numbers, [first, last], written without a decimal point or exponent; write e.g. range = [1, 20]",
            ));
        }
        match bounds[..] {
            [Whole::Number(first), Whole::Number(last)] => Ok(Range { first, last }),
            ref other => Err(serde::de::Error::custom(format!(
                "`range` takes two numbers, [first, last], and this one has {}; write e.g. range = [1, 20]",
                other.len()
            ))),
        }
    }
}

/// A duration written as `"30s"`, `"2m"` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        config::duration_of_toml(d).map(HumanDuration)
    }
}

/// A size in bytes written as `"16MiB"`, `"64KiB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Bytes(n)) => Ok(HumanSize(n)),
            Ok(Raw::Text(t)) => crate::human::parse_size(&t)
                .map(HumanSize)
                .map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom(
                "a size is a number of bytes or a string such as \"16MiB\"",
            )),
        }
    }
}
