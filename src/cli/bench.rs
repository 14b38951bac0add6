//! `poolscope bench DIR --workers 1,2,4,8 --runs R [--warmup W]`.

use std::path::PathBuf;

use clap::Args;

use super::{Failure, exit, parse_size, report};
use crate::bench::{self, Plan, Progress, export};
use crate::config::PoolSettings;
use crate::human::seconds;
use crate::record::rundir;
use crate::taskdir;

/// `poolscope bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The task directory.
    pub dir: PathBuf,
    /// Worker counts to compare, e.g. 1,2,4,8 or 1..=8 (default: 1 and the number of cores).
    #[arg(short = 'w', long, value_parser = worker_list)]
    pub workers: Option<WorkerList>,
    /// Timed runs per worker count.
    #[arg(short = 'r', long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Untimed runs per worker count before the timed ones.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    #[command(flatten)]
    pub pool: PoolSettings,
    /// Record the runs and bench.json here instead of DIR/.poolscope/bench/<time>/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write bench.json (hyperfine's --export-json schema) to this file.
    #[arg(long, value_name = "FILE")]
    pub export_json: Option<PathBuf>,
    /// Also write the table as markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub export_markdown: Option<PathBuf>,
    /// Cap of each saved output stream.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "100MiB")]
    pub output_cap: u64,
}

/// Worker counts, as one flag value.
#[derive(Debug, Clone)]
pub struct WorkerList(pub Vec<usize>);

fn worker_list(text: &str) -> Result<WorkerList, String> {
    bench::parse_workers(text).map(WorkerList)
}

pub fn bench(args: &BenchArgs) -> Result<u8, Failure> {
    let dir = taskdir::load(&args.dir).map_err(Failure::bad_input)?;
    let config = args.pool.or(&dir.pool).resolve();
    let workers = args
        .workers
        .clone()
        .map_or_else(|| bench::default_workers(dir.pool.workers), |w| w.0);
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = rundir::stamp(std::time::SystemTime::now());
        dir.root.join(".poolscope").join("bench").join(stamp)
    });
    let plan = Plan {
        workers,
        runs: args.runs as usize,
        warmup: args.warmup as usize,
        config,
        out: out.clone(),
        output_cap: args.output_cap,
        guardian: std::env::current_exe().ok(),
    };
    let mut failed_runs = 0;
    let result = bench::run(&dir, &plan, None, None, |p| match p {
        Progress::Starting {
            workers,
            run,
            of,
            warmup,
        } => {
            let kind = if warmup { " (warm-up)" } else { "" };
            report::note(&format!("workers {workers}: run {run}/{of}{kind}…"));
        }
        Progress::Done(sample) => {
            if !sample.all_ok {
                failed_runs += 1;
            }
            let bad = if sample.all_ok {
                ""
            } else {
                " — some tasks failed"
            };
            report::note(&format!(
                "workers {}: {} (summed task time {}){bad}",
                sample.workers,
                seconds(std::time::Duration::from_secs_f64(sample.wall)),
                seconds(std::time::Duration::from_secs_f64(
                    sample.summed_task_time()
                )),
            ));
        }
        Progress::Event(_) => {}
    });
    let report_ = result.map_err(|e| match e {
        crate::engine::RunError::Panicked(panic) => {
            Failure::internal(&panic, "the benchmark stopped there")
        }
        other => Failure::bad_input(other),
    })?;
    let json = export::hyperfine_json(&report_, &dir.root);
    let write = |path: &std::path::Path, text: &str| {
        std::fs::write(path, text).map_err(|e| Failure {
            code: exit::TASKS_FAILED,
            message: format!("cannot write {}: {e}", path.display()),
        })
    };
    let json_text = serde_json::to_string_pretty(&json).map_err(|e| Failure {
        code: exit::TASKS_FAILED,
        message: format!("cannot encode bench.json: {e}"),
    })?;
    write(&out.join("bench.json"), &json_text)?;
    if let Some(path) = &args.export_json {
        write(path, &json_text)?;
    }
    let table = export::markdown(&report_);
    if let Some(path) = &args.export_markdown {
        write(path, &table)?;
    }
    let code = if failed_runs > 0 {
        exit::TASKS_FAILED
    } else {
        exit::OK
    };
    report::print(&format!("{table}records: {}\n", out.display()))
        .map(|()| code)
        .map_err(|e| {
            let records = format!("bench.json and the runs are in {}", out.display());
            report::lost_output("the table", &e, &records, code)
        })
}
