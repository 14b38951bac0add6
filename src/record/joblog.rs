//! `joblog.tsv` in GNU parallel's `--joblog` layout, one line appended per finished task
//! (written at once, or with the others that finished back to back); and reading one back
//! for `--resume`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use super::batch::Batched;
use crate::event::AttemptRecord;

pub const FILE: &str = "joblog.tsv";

pub const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// An open joblog. Lines are gathered while finished tasks arrive back to back and written
/// together (one `write`) as soon as the engine has nothing else to do.
pub struct Joblog {
    out: Batched,
    /// The file is empty: the header goes with the first line (or after
    /// [`Joblog::header_if_none`]).
    header_due: bool,
}

impl Joblog {
    /// Open for appending (created if missing, now, while the run's tasks do not hold
    /// the descriptors there are), cutting off a torn last line (a run killed mid-write:
    /// its task runs again on `--resume`) so that new lines start clean. An empty file
    /// gets the header with its first line.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let whole = super::batch::whole_lines(&file, len)?;
        if whole < len {
            file.set_len(whole)?;
        }
        Ok(Joblog {
            out: Batched::to_file(path.to_path_buf(), file),
            header_due: whole == 0,
        })
    }

    /// Append the line of a task's final attempt.
    pub fn append(
        &mut self,
        record: &AttemptRecord,
        run_start_epoch: f64,
        command: &str,
    ) -> io::Result<()> {
        self.header_if_none();
        self.out
            .buffer()
            .extend_from_slice(line(record, run_start_epoch, command).as_bytes());
        self.out.added()
    }

    /// Write the lines gathered so far.
    pub fn flush(&mut self) -> io::Result<()> {
        let flushed = self.out.flush();
        if flushed.is_err() && self.out.nothing_written() {
            // The header went with the lost batch: the next line brings it.
            self.header_due = true;
        }
        flushed
    }

    /// The header, if the file is new and has none yet: before its first line, or at a
    /// run's end if no line came to carry it, so that the next flush creates the file. A
    /// run always leaves a joblog.
    pub fn header_if_none(&mut self) {
        if std::mem::take(&mut self.header_due) {
            self.out.buffer().extend_from_slice(HEADER.as_bytes());
        }
    }
}

/// One joblog line.
pub fn line(record: &AttemptRecord, run_start_epoch: f64, command: &str) -> String {
    use std::fmt::Write as _;
    let (exitval, signal) = record.outcome.joblog_columns(record.signal);
    let mut out = String::with_capacity(64 + command.len());
    let start = millis(run_start_epoch + record.started.as_secs_f64());
    let runtime = millis(record.wall().as_secs_f64());
    let _ = write!(out, "{}\t:\t", record.key.seq);
    push_millis(&mut out, start, 0);
    out.push('\t');
    push_millis(&mut out, runtime, 10);
    let _ = write!(
        out,
        "\t0\t{}\t{}\t{}\t",
        record.stdout_bytes, exitval, signal
    );
    out.push_str(&command_column(command));
    out.push('\n');
    out
}

/// What the Command column holds for `command`: its tabs and line breaks as spaces.
pub fn command_column(command: &str) -> Cow<'_, str> {
    let breaks = |c: char| c == '\t' || c == '\n' || c == '\r';
    if command.contains(breaks) {
        Cow::Owned(command.replace(breaks, " "))
    } else {
        Cow::Borrowed(command)
    }
}

/// Seconds as whole milliseconds, rounded.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// `ms` as seconds with three decimals (what `%.3f` prints), right-aligned in `width`.
fn push_millis(out: &mut String, ms: i64, width: usize) {
    use std::fmt::Write as _;
    let negative = ms < 0;
    let ms = ms.unsigned_abs();
    let whole = ms / 1000;
    let digits = whole.checked_ilog10().unwrap_or(0) as usize + 1;
    let len = usize::from(negative) + digits + 4;
    for _ in len..width {
        out.push(' ');
    }
    if negative {
        out.push('-');
    }
    let _ = write!(out, "{whole}.{:03}", ms % 1000);
}

/// The successful lines (Exitval 0, Signal 0) of the joblog at `path`, as their Seq and
/// Command, each pair once, in the order written. A missing file has none; a last line
/// without its newline (a run killed mid-write) is ignored.
pub fn successes(path: &Path) -> io::Result<Vec<(usize, String)>> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut seen = HashSet::new();
    let mut done = Vec::new();
    for line in text.split_inclusive('\n').skip(1) {
        let Some(line) = line.strip_suffix('\n') else {
            continue;
        };
        let cols: Vec<&str> = line
            .strip_suffix('\r')
            .unwrap_or(line)
            .splitn(9, '\t')
            .collect();
        if cols.len() < 9 {
            continue;
        }
        let (Ok(seq), Ok(exitval), Ok(signal)) = (
            cols[0].trim().parse::<usize>(),
            cols[6].trim().parse::<i32>(),
            cols[7].trim().parse::<i32>(),
        ) else {
            continue;
        };
        if exitval == 0 && signal == 0 && seen.insert((seq, cols[8])) {
            done.push((seq, cols[8].to_string()));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;
    use crate::event::{AttemptKey, Outcome};

    fn record(seq: usize, outcome: Outcome, signal: Option<i32>) -> AttemptRecord {
        AttemptRecord {
            key: AttemptKey { seq, attempt: 1 },
            slot: 1,
            pid: 10,
            started: Duration::from_millis(1500),
            ended: Duration::from_millis(2750),
            outcome,
            signal,
            user: Duration::ZERO,
            system: Duration::ZERO,
            max_rss: 0,
            stdout_bytes: 12,
            stderr_bytes: 0,
            stderr_tail: String::new(),
            cores: vec![],
            leftovers_killed: false,
            is_final: true,
            result: None,
            lost: Vec::new(),
        }
    }

    #[test]
    fn lines_follow_gnu_parallel() {
        let l = line(
            &record(3, Outcome::Exited { code: 2 }, None),
            1000.0,
            "echo a\tb",
        );
        assert_eq!(l, "3\t:\t1001.500\t     1.250\t0\t12\t2\t0\techo a b\n");
        let l = line(
            &record(4, Outcome::Signaled { signal: 11 }, Some(11)),
            0.0,
            "x",
        );
        assert!(l.contains("\t0\t11\tx\n"));
        let l = line(&record(5, Outcome::TimedOut, Some(15)), 0.0, "x");
        assert!(l.contains("\t-1\t15\tx\n"));
        let l = line(
            &record(6, Outcome::NotStarted { error: "e".into() }, None),
            0.0,
            "x",
        );
        assert!(l.contains("\t127\t0\tx\n"));
    }

    #[test]
    fn resume_reads_successful_lines_only() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE);
        let mut log = Joblog::open(&path)?;
        log.append(&record(1, Outcome::Exited { code: 0 }, None), 0.0, "a")?;
        log.append(&record(2, Outcome::Exited { code: 1 }, None), 0.0, "b")?;
        log.append(
            &record(3, Outcome::Signaled { signal: 9 }, Some(9)),
            0.0,
            "c",
        )?;
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path)?;
        f.write_all(b"4\t:\t1.0\t     1.000\t0\t0\t0\t0\tcomm")?;
        let ok = |pairs: &[(usize, &str)]| -> Vec<(usize, String)> {
            pairs.iter().map(|(n, c)| (*n, c.to_string())).collect()
        };
        assert_eq!(successes(&path)?, ok(&[(1, "a")]), "a torn line is not one");
        let mut log = Joblog::open(&path)?;
        log.append(
            &record(5, Outcome::Exited { code: 0 }, None),
            0.0,
            "e\tf\ng",
        )?;
        assert_eq!(
            successes(&path)?,
            ok(&[(1, "a")]),
            "not written before a flush"
        );
        log.flush()?;
        log.append(&record(1, Outcome::Exited { code: 0 }, None), 0.0, "a")?;
        log.append(&record(1, Outcome::Exited { code: 0 }, None), 0.0, "a2")?;
        log.flush()?;
        assert_eq!(
            successes(&path)?,
            ok(&[(1, "a"), (5, "e f g"), (1, "a2")]),
            "each pair once, the command as written"
        );
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.matches("Seq\t").count(), 1);
        assert!(!text.contains("comm"), "the torn line is cut off: {text}");
        assert_eq!(text.lines().count(), 7, "{text}");
        Ok(())
    }

    #[test]
    fn a_new_joblog_gets_its_header_with_its_first_line_or_at_the_end() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE);
        let mut log = Joblog::open(&path)?;
        log.flush()?;
        assert_eq!(
            std::fs::read_to_string(&path)?,
            "",
            "created at once, the header waits for the first line"
        );
        log.append(&record(1, Outcome::Exited { code: 0 }, None), 0.0, "a")?;
        log.flush()?;
        let text = std::fs::read_to_string(&path)?;
        assert!(text.starts_with(HEADER), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        let quiet = dir.path().join("quiet.tsv");
        let mut log = Joblog::open(&quiet)?;
        log.header_if_none();
        log.flush()?;
        assert_eq!(std::fs::read_to_string(&quiet)?, HEADER);
        Ok(())
    }
}
