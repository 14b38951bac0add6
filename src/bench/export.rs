//! Writing a benchmark out: hyperfine's `--export-json` schema (`bench.json`), and a
//! markdown table.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Report;

/// `bench.json`: hyperfine's schema, one result per worker count, plus what the machine was.
#[derive(Debug, Serialize)]
pub struct HyperfineJson<'a> {
    pub results: Vec<HyperfineResult>,
    /// Not in hyperfine's files; its readers ignore it.
    pub poolscope: Context<'a>,
}

#[derive(Debug, Serialize)]
pub struct HyperfineResult {
    pub command: String,
    pub mean: f64,
    /// `null` for a single run, as hyperfine writes it.
    pub stddev: Option<f64>,
    pub median: f64,
    pub user: f64,
    pub system: f64,
    pub min: f64,
    pub max: f64,
    pub times: Vec<f64>,
    pub exit_codes: Vec<i32>,
    pub parameters: Parameters,
}

#[derive(Debug, Serialize)]
pub struct Parameters {
    pub workers: String,
}

#[derive(Debug, Serialize)]
pub struct Context<'a> {
    pub version: &'a str,
    pub cores: usize,
    pub load_average_before: Option<[f64; 3]>,
    pub measured_serial: Option<f64>,
    pub estimated_serial: Option<f64>,
    pub settings: &'a [super::Setting],
}

/// The report in hyperfine's JSON schema; `dir` names the task directory in each command.
pub fn hyperfine_json<'a>(report: &'a Report, dir: &Path) -> HyperfineJson<'a> {
    HyperfineJson {
        results: report
            .settings
            .iter()
            .map(|s| HyperfineResult {
                command: format!("poolscope run {} --workers {}", dir.display(), s.workers),
                mean: s.spread.mean,
                stddev: (s.times.len() > 1).then_some(s.spread.stddev),
                median: s.spread.median,
                user: s.user,
                system: s.system,
                min: s.spread.min,
                max: s.spread.max,
                times: s.times.clone(),
                exit_codes: s.exit_codes.clone(),
                parameters: Parameters {
                    workers: s.workers.to_string(),
                },
            })
            .collect(),
        poolscope: Context {
            version: &report.version,
            cores: report.cores,
            load_average_before: report.load_average_before,
            measured_serial: report.measured_serial,
            estimated_serial: report.estimated_serial,
            settings: &report.settings,
        },
    }
}

/// The report as a markdown table, with the serial estimate below it.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from(
        "| workers | mean ± σ [s] | median [s] | min [s] | max [s] | speed-up | efficiency | Karp–Flatt | ideal [s] |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    for s in &report.settings {
        let _ = writeln!(
            out,
            "| {} | {:.3} ± {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {:.3} |",
            s.workers,
            s.spread.mean,
            s.spread.stddev,
            s.spread.median,
            s.spread.min,
            s.spread.max,
            opt(s.speedup, 2),
            opt(s.efficiency, 2),
            opt(s.karp_flatt, 3),
            s.ideal
        );
    }
    let _ = writeln!(out, "\n{}", serial_note(report));
    let _ = writeln!(
        out,
        "{} cores; load average before: {}; poolscope {}.",
        report.cores,
        report
            .load_average_before
            .map_or("unknown".to_string(), |l| format!(
                "{:.2} {:.2} {:.2}",
                l[0], l[1], l[2]
            )),
        report.version
    );
    out
}

/// How the serial time was known, and how far the estimate from task durations was off.
pub fn serial_note(report: &Report) -> String {
    match (report.measured_serial, report.estimated_serial) {
        (Some(m), Some(e)) => format!(
            "Serial: measured {m:.3} s with 1 worker; the parallel runs' summed task time estimated {e:.3} s ({:+.1} %). Speed-up is against the measured time.",
            (e - m) / m * 100.0
        ),
        (None, Some(e)) => format!(
            "Serial: not measured; the summed task time of the parallel runs estimates {e:.3} s, and speed-up is against that estimate (shared caches, memory bandwidth or I/O contention make it wrong: add 1 to --workers to measure)."
        ),
        (Some(m), None) => format!("Serial: measured {m:.3} s with 1 worker."),
        (None, None) => "Serial: unknown (no run finished).".to_string(),
    }
}
