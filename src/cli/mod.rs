//! The command line: `poolscope run DIR` and friends. Errors print as one `error:` line
//! and exit with the codes of DESIGN §7.

mod bench;
mod interrupt;
mod progress;
mod report;
mod run;
mod terminal;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::PoolSettings;

/// Exit codes (DESIGN §7).
pub mod exit {
    pub const OK: u8 = 0;
    pub const TASKS_FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    /// A record of the run could not be written in full (disk full, I/O error); it wins
    /// over [`TASKS_FAILED`], whose tasks the records may no longer show. As sysexits.h's
    /// `EX_IOERR`.
    pub const RECORDS_INCOMPLETE: u8 = 74;
    /// A bug: a thread of poolscope panicked (sysexits' EX_SOFTWARE).
    pub const INTERNAL: u8 = 70;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "poolscope",
    version,
    about = "Run a directory of tasks on a pool of processes and watch it work",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Task directory to open in the desktop app.
    dir: Option<PathBuf>,
    /// Save a screenshot of the app's window to this PNG file, then exit.
    #[arg(long, value_name = "FILE.png")]
    screenshot: Option<PathBuf>,
    /// Start running the tasks as the app opens (with --screenshot: run them to the end
    /// before the picture).
    #[arg(long, requires = "dir")]
    run: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a task directory headless, with a progress bar on a terminal.
    Run(RunArgs),
    /// Serial against parallel: run the tasks at several worker counts and compare.
    Bench(bench::BenchArgs),
    /// Internal: the guardian process that kills what a dead poolscope left behind.
    #[command(name = "__guardian", hide = true)]
    Guardian { prefix: String },
    /// Internal: serve a built-in kernel as a persistent worker (fds 3 and 4).
    #[command(name = crate::worker::KERNEL_SUBCOMMAND, hide = true)]
    Worker { kernel: String },
}

/// `poolscope run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The task directory.
    pub dir: PathBuf,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Record the run in this directory instead of `DIR/.poolscope/runs/<time>/`.
    #[arg(long, value_name = "RUNDIR")]
    pub out: Option<PathBuf>,
    /// Rerun only the tasks without a successful joblog line in RUNDIR (default: the latest run).
    #[arg(long)]
    pub resume: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print the tasks with their expanded commands and the ignored files; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cap of each saved output stream, e.g. 100MiB or 1048576.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "100MiB")]
    pub output_cap: u64,
}

/// Flags for every `[pool]` setting; they override the manifest.
#[derive(Debug, Args, Default)]
pub struct PoolArgs {
    /// Worker slots (default: the manifest's, else the number of logical CPUs).
    #[arg(short = 'j', long, value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_WORKERS as u64))]
    pub workers: Option<u64>,
    #[command(flatten)]
    pub rest: PoolSettings,
}

impl PoolArgs {
    pub fn settings(&self) -> PoolSettings {
        PoolSettings {
            workers: self.workers.map(|w| w as usize),
            ..self.rest.clone()
        }
    }
}

pub(crate) use crate::human::parse_size;

/// A command failed: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn bad_input(message: impl ToString) -> Self {
        Failure {
            code: exit::BAD_INPUT,
            message: message.to_string(),
        }
    }

    /// A panic (described by [`crate::engine::panics`]): poolscope's own fault.
    pub fn internal(panic: &str, after: &str) -> Self {
        Failure {
            code: exit::INTERNAL,
            message: format!("internal error: {panic}; {after}"),
        }
    }
}

/// Parse the command line, run it, and turn the result into an exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let ran = crate::engine::panics::catch(|| match cli.command {
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Bench(args)) => bench::bench(&args),
        Some(Command::Guardian { prefix }) => crate::guard::guardian_main(&prefix),
        Some(Command::Worker { kernel }) => serve_kernel(&kernel),
        None => open_app(cli.dir, cli.screenshot, cli.run),
    });
    let result = ran.unwrap_or_else(|panic| {
        Err(Failure::internal(
            &panic,
            "please report it, with the lines above",
        ))
    });
    match result {
        Ok(code) => code,
        Err(failure) => {
            use std::io::Write as _;
            let message = terminal::escape(&failure.message);
            let _ = writeln!(std::io::stderr(), "error: {message}");
            failure.code
        }
    }
}

/// `poolscope __worker KERNEL`: serve a built-in kernel on fds 3 and 4.
fn serve_kernel(name: &str) -> Result<u8, Failure> {
    use crate::worker::{Kernel, kernel};
    let Some(k) = Kernel::from_name(name) else {
        let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
        return Err(Failure::bad_input(format!(
            "unknown built-in kernel `{name}`; poolscope has {}",
            names.join(", ")
        )));
    };
    kernel::serve(k).map(|()| exit::OK).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}

#[cfg(feature = "gui")]
fn open_app(dir: Option<PathBuf>, screenshot: Option<PathBuf>, run: bool) -> Result<u8, Failure> {
    if let Some(d) = &dir
        && !d.is_dir()
    {
        return Err(Failure::bad_input(format!(
            "`{}` is not a directory; give the folder that holds the tasks",
            d.display()
        )));
    }
    if let Some(path) = &screenshot {
        crate::gui::check_screenshot_path(path).map_err(Failure::bad_input)?;
    }
    crate::gui::run(crate::gui::Launch {
        dir,
        screenshot,
        run,
    })
    .map(|()| exit::OK)
    .map_err(|failed| match failed {
        crate::gui::Failed::Window(message) => Failure {
            code: exit::TASKS_FAILED,
            message,
        },
        crate::gui::Failed::Screenshot(message) => Failure::bad_input(message),
    })
}

#[cfg(not(feature = "gui"))]
fn open_app(dir: Option<PathBuf>, _screenshot: Option<PathBuf>, _run: bool) -> Result<u8, Failure> {
    let hint = match dir {
        Some(d) => format!("run it headless with `poolscope run {}`", d.display()),
        None => "run a task directory headless with `poolscope run DIR`".to_string(),
    };
    Err(Failure::bad_input(format!(
        "this build of poolscope has no desktop app (built without the `gui` feature); {hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn pool_flags_parse_into_the_pool_settings() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args) {
            Ok(Cli {
                command: Some(Command::Run(a)),
                ..
            }) => Ok((a.dir, a.pool.settings())),
            Ok(_) => Err("not run".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let (dir, s) = parse(&["poolscope", "run", "--pin", "tasks", "-j", "3"]).expect("parses");
        assert_eq!(dir, PathBuf::from("tasks"));
        assert_eq!((s.pin, s.workers), (Some(true), Some(3)));
        let (_, s) =
            parse(&["poolscope", "run", "tasks", "--pin=false", "--halt", "soon"]).expect("parses");
        assert_eq!(s.pin, Some(false));
        assert_eq!(s.halt, Some(crate::config::Halt::Soon));
        let (_, s) = parse(&["poolscope", "run", "tasks", "--timeout", "2m"]).expect("parses");
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(120)));
        assert_eq!(s.pin, None);
        let bad = parse(&["poolscope", "run", "tasks", "--order", "random"]);
        assert!(bad.is_err_and(|e| e.contains("not an order")));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
    }
}
