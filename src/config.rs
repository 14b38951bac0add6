//! Pool settings: what the manifest's `[pool]` table and the command line say, and the
//! resolved configuration a run uses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_DURATION, MAX_RETRIES, MAX_WORKERS};

/// What the pool does after a task fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Halt {
    /// Keep going; run every task.
    #[default]
    Never,
    /// Start no new task; let running ones finish.
    Soon,
    /// Start no new task and kill the running ones.
    Now,
}

impl std::str::FromStr for Halt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Halt::Never),
            "soon" => Ok(Halt::Soon),
            "now" => Ok(Halt::Now),
            _ => Err(format!(
                "`{}` is not a halt mode; use never, soon or now",
                crate::human::excerpt(s)
            )),
        }
    }
}

impl TryFrom<String> for Halt {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The order in which tasks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum Order {
    /// As the task directory lists them.
    #[default]
    Listed,
    /// Longest first, by the durations the directory's previous run recorded.
    LongestFirst,
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "listed" => Ok(Order::Listed),
            "longest-first" => Ok(Order::LongestFirst),
            _ => Err(format!(
                "`{}` is not an order; use listed or longest-first",
                crate::human::excerpt(s)
            )),
        }
    }
}

impl TryFrom<String> for Order {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The pool's settings, each of which may be unset: the one schema of the manifest's
/// `[pool]` table (serde) and of the command line's pool flags (clap). Later sources
/// override earlier ones ([`PoolSettings::or`]); [`PoolSettings::resolve`] fills in the
/// defaults. A new setting is a field here and in [`PoolConfig`], and a widget in the
/// app's pool form.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Worker slots. On the command line it is `run`'s `-j/--workers` (bench takes a list).
    #[arg(skip)]
    #[serde(default, deserialize_with = "at_least_one")]
    pub workers: Option<usize>,
    /// Per-attempt time limit, e.g. 30s, 2m.
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "human_duration")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failure.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETRIES)))]
    #[serde(default, deserialize_with = "retry_count")]
    pub retries: Option<u32>,
    /// After a failure: never, soon (start nothing new) or now (also kill running tasks).
    #[arg(long, value_parser = str::parse::<Halt>)]
    pub halt: Option<Halt>,
    /// listed, or longest-first (by the durations of the previous run).
    #[arg(long, value_parser = str::parse::<Order>)]
    pub order: Option<Order>,
    /// Pin worker slot i to core i mod ncores.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub pin: Option<bool>,
    /// Persistent workers: recycle a worker after this many tasks (0 = never).
    #[arg(long)]
    pub max_tasks_per_worker: Option<u32>,
}

impl PoolSettings {
    /// Settings from `self`, falling back to `base` where `self` says nothing.
    pub fn or(&self, base: &PoolSettings) -> PoolSettings {
        PoolSettings {
            workers: self.workers.or(base.workers),
            timeout: self.timeout.or(base.timeout),
            retries: self.retries.or(base.retries),
            halt: self.halt.or(base.halt),
            order: self.order.or(base.order),
            pin: self.pin.or(base.pin),
            max_tasks_per_worker: self.max_tasks_per_worker.or(base.max_tasks_per_worker),
        }
    }

    /// Fill what is still unset with the defaults (workers = logical CPUs).
    pub fn resolve(&self) -> PoolConfig {
        PoolConfig {
            workers: self.workers.unwrap_or_else(logical_cpus).max(1),
            timeout: self.timeout,
            retries: self.retries.unwrap_or(0),
            halt: self.halt.unwrap_or_default(),
            order: self.order.unwrap_or_default(),
            pin: self.pin.unwrap_or(false),
            max_tasks_per_worker: self.max_tasks_per_worker.unwrap_or(0),
        }
    }
}

/// A worker count of at least one and at most [`MAX_WORKERS`].
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match whole_number(
        d,
        &format!("`workers` is a whole number from 1 to {MAX_WORKERS}"),
    )? {
        0 => Err(serde::de::Error::custom("`workers` must be at least 1")),
        n if n > MAX_WORKERS as u64 => Err(serde::de::Error::custom(format!(
            "`workers = {n}` is more than poolscope's {MAX_WORKERS} worker slots; a run has no more slots than tasks anyway"
        ))),
        n => Ok(Some(n as usize)),
    }
}

/// A retry count of at most [`MAX_RETRIES`].
fn retry_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match whole_number(
        d,
        &format!("`retries` is a whole number from 0 to {MAX_RETRIES}"),
    )? {
        n if n > u64::from(MAX_RETRIES) => Err(serde::de::Error::custom(format!(
            "`retries = {n}` is more than poolscope's {MAX_RETRIES} retries of a task; a task that fails that often will not pass"
        ))),
        n => Ok(Some(n as u32)),
    }
}

/// A whole number of at least 0; anything else (`1e9`, `-1`, `"4"`) is refused with
/// `expected`, which says what the key takes.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D, expected: &str) -> Result<u64, D::Error> {
    match Whole::<u64>::deserialize(d)? {
        Whole::Number(n) => Ok(n),
        Whole::Other(_) => Err(serde::de::Error::custom(format!(
            "{expected}; write it without a decimal point or exponent, e.g. 4"
        ))),
    }
}

/// A whole number as the manifest gives it, or anything else (`1e9`, `2.5`, `"4"`), read
/// so that the key can refuse it with a sentence of its own rather than serde's.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Whole<T> {
    Number(T),
    Other(serde::de::IgnoredAny),
}

/// An optional duration, as [`duration_of_toml`] reads it.
fn human_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_of_toml(d).map(Some)
}

/// A duration written as a number of seconds or as text such as `"30s"`.
pub fn duration_of_toml<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) if s.abs() >= 1e9 => duration_of_secs(s, &format!("{s:e}")),
        Raw::Secs(s) => duration_of_secs(s, &s.to_string()),
        Raw::Text(t) => parse_duration(&t),
    }
    .map_err(serde::de::Error::custom)
}
/// The configuration a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub workers: usize,
    #[serde(with = "duration_secs")]
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub halt: Halt,
    pub order: Order,
    pub pin: bool,
    pub max_tasks_per_worker: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolSettings::default().resolve()
    }
}

/// Number of logical CPUs this process may run on.
pub fn logical_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parse a duration such as `30s`, `2m`, `1h 30m`, `250ms` or a bare number of seconds,
/// of at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>()
        && !secs.is_nan()
    {
        return duration_of_secs(secs, text);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(too_long(text)),
        Err(_) => Err(format!(
            "`{}` is not a duration; write a number with a unit, like \"30s\", \"2m\" or \"250ms\"",
            crate::human::excerpt(text)
        )),
    }
}

/// `secs` seconds (written `shown`), if it is a duration poolscope takes.
fn duration_of_secs(secs: f64, shown: &str) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!(
            "`{}` is not a duration; a duration is a number of seconds of 0 or more, or text like \"30s\"",
            crate::human::excerpt(shown)
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(too_long(shown)),
    }
}

fn too_long(shown: &str) -> String {
    format!(
        "`{}` is too long: a duration is at most {} s (one year); write a shorter one",
        crate::human::excerpt(shown),
        MAX_DURATION.as_secs()
    )
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs: Option<f64> = Option::deserialize(d)?;
        secs.map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_are_at_most_a_year() {
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31557600"), Ok(MAX_DURATION));
        for long in ["31557601", "1e19", "1e400", "500000000000y", "366d"] {
            let err = parse_duration(long).expect_err(long);
            assert!(err.contains("too long"), "{long}: {err}");
        }
        for bad in ["-1", "nan", "-inf", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn later_settings_override() {
        let manifest = PoolSettings {
            workers: Some(4),
            retries: Some(2),
            ..Default::default()
        };
        let flags = PoolSettings {
            workers: Some(8),
            ..Default::default()
        };
        let config = flags.or(&manifest).resolve();
        assert_eq!(config.workers, 8);
        assert_eq!(config.retries, 2);
        assert_eq!(config.halt, Halt::Never);
    }
}
