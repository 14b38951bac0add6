//! Pool settings: what the manifest's `[pool]` table and the command line say, and the
//! resolved configuration a run uses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the pool does after a task fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Halt {
    /// Keep going; run every task.
    #[default]
    Never,
    /// Start no new task; let running ones finish.
    Soon,
    /// Start no new task and kill the running ones.
    Now,
}

/// The order in which tasks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// As the task directory lists them.
    #[default]
    Listed,
    /// Longest first, by the durations the directory's previous run recorded.
    LongestFirst,
}

/// Pool settings that may each be unset; later sources override earlier ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSettings {
    pub workers: Option<usize>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub halt: Option<Halt>,
    pub order: Option<Order>,
    pub pin: Option<bool>,
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

/// Parse a duration such as `30s`, `2m`, `1h 30m`, `250ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(text).map_err(|_| {
        format!("`{text}` is not a duration; write a number with a unit, like \"30s\", \"2m\" or \"250ms\"")
    })
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
        Ok(secs.map(Duration::from_secs_f64))
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
