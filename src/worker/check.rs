//! The check of a Python worker's functions as its task directory loads: one interpreter
//! runs the adapter with `--check`, which loads the module by path and looks the functions
//! up exactly as a worker does, then exits. A module that cannot load is then a load error,
//! not one failed worker start per item.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{ADAPTER, PyFunction, WorkerProgram, WorkerSpec};

/// How long the check may take. A module slower than that to import is not checked: its
/// workers import it themselves, and a failure there is caught at run time.
pub const CHECK_LIMIT: Duration = Duration::from_secs(10);

/// Bytes of the interpreter's stdout and stderr read back.
const KEPT: u64 = 256 * 1024;

/// How the check went.
#[derive(Debug)]
pub enum Checked {
    /// Every function loaded.
    Ok,
    /// One did not.
    Failed(CheckFailure),
    /// The check could not say (it took too long): worth a note, not an error.
    Unknown(String),
}

/// Why a function of `[worker]` cannot be loaded.
#[derive(Debug, Clone)]
pub struct CheckFailure {
    /// The manifest key that names it, `python` or `init`; `None` when python3 itself
    /// cannot be started.
    pub key: Option<&'static str>,
    /// One sentence: what, where, and a hint.
    pub sentence: String,
    /// The traceback (or what python3 wrote), to show after the sentence.
    pub traceback: String,
}

/// The adapter's answer on stdout.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    spec: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    traceback: String,
    #[serde(default)]
    suggestion: Option<String>,
}

/// Check the functions of a Python worker (nothing to check for other workers).
pub fn check(spec: &WorkerSpec) -> Checked {
    let WorkerProgram::Python { function, init } = &spec.program else {
        return Checked::Ok;
    };
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(ADAPTER)
        .arg("--check")
        .arg(function.spec())
        .args(init.iter().map(PyFunction::spec))
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        // Marked like a run's processes, so the guardian kills what it may leave behind.
        .env(
            crate::guard::MARKER_VAR,
            format!("{}/check/", crate::guard::process_token()),
        )
        .stdin(Stdio::null())
        .process_group(0);
    // Files, not pipes: a process the module starts and leaves running may hold them open,
    // and the check waits for python3's exit alone.
    let (Ok(out), Ok(err)) = (scratch_file(), scratch_file()) else {
        return Checked::Unknown(format!(
            "{} was not checked: no file to hold python3's output",
            function.spec()
        ));
    };
    let (Ok(out_child), Ok(err_child)) = (out.try_clone(), err.try_clone()) else {
        return Checked::Unknown(format!(
            "{} was not checked: no file to hold python3's output",
            function.spec()
        ));
    };
    command.stdout(out_child).stderr(err_child);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Checked::Failed(CheckFailure {
                key: None,
                sentence: format!(
                    "[worker] `python = \"{}\"` needs python3, which cannot be started ({e}); install Python 3 or put python3 on PATH",
                    function.spec()
                ),
                traceback: String::new(),
            });
        }
    };
    let exited = wait_exit(child.id(), CHECK_LIMIT);
    // Before it is reaped, while its group is still its own: whatever the module started
    // and left behind goes with it.
    kill_group(child.id());
    let status = child.wait();
    match (exited, status) {
        (true, Ok(status)) => judge(
            function,
            init.as_ref(),
            status,
            &read_back(out),
            &read_back(err),
        ),
        (true, Err(e)) => Checked::Unknown(format!(
            "{} was not checked: lost track of python3 ({e})",
            function.spec()
        )),
        (false, _) => Checked::Unknown(format!(
            "{} was not checked: importing it took more than {}; each worker imports it as it starts",
            function.spec(),
            crate::human::seconds(CHECK_LIMIT)
        )),
    }
}

/// Wait until process `pid`, a child, has exited (leaving it to be reaped), at most `limit`;
/// true if it did.
fn wait_exit(pid: u32, limit: Duration) -> bool {
    use crate::engine::child;
    let deadline = Instant::now() + limit;
    if let Some(fd) = child::pidfd_open(pid) {
        let ready = child::poll(
            &[(std::os::fd::AsFd::as_fd(&fd), nix::poll::PollFlags::POLLIN)],
            Some(limit),
        );
        return ready == [true] || child::has_exited(pid);
    }
    // No pidfd (Linux before 5.3): look every few milliseconds, without reaping.
    loop {
        if child::has_exited(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A file that is gone from every directory: a memfd, else an unlinked temporary file.
fn scratch_file() -> std::io::Result<File> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    if let Ok(fd) = memfd_create(c"poolscope-check", MFdFlags::MFD_CLOEXEC) {
        return Ok(File::from(fd));
    }
    static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "poolscope-check-{}-{n}",
        crate::guard::process_token()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

/// What was written to `file`, at most [`KEPT`] bytes.
fn read_back(mut file: File) -> Vec<u8> {
    let mut kept = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = (&mut file).take(KEPT).read_to_end(&mut kept);
    }
    kept
}

fn kill_group(pid: u32) {
    crate::engine::child::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
}

/// What the adapter's answer, or python3's exit without one, means.
fn judge(
    function: &PyFunction,
    init: Option<&PyFunction>,
    status: std::process::ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Checked {
    let answer = String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Answer>(l).ok());
    match answer {
        Some(a) if a.ok && status.success() => Checked::Ok,
        Some(a) if !a.ok => {
            let (key, named) = match init {
                Some(init) if a.spec == init.spec() && a.spec != function.spec() => ("init", init),
                _ => ("python", function),
            };
            Checked::Failed(CheckFailure {
                key: Some(key),
                sentence: sentence(key, named, &a),
                traceback: a.traceback,
            })
        }
        _ => {
            let stderr = String::from_utf8_lossy(stderr).into_owned();
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("it wrote nothing on stderr")
                .to_string();
            Checked::Failed(CheckFailure {
                key: Some("python"),
                sentence: format!(
                    "[worker] `python = \"{}\"` cannot be loaded: python3 ended ({status}) before it said whether {} loads: {last}; fix {} or what it imports",
                    function.spec(),
                    function.file,
                    function.file
                ),
                traceback: stderr,
            })
        }
    }
}

/// The sentence of a failed check of `key = "file.py:function"`.
fn sentence(key: &str, f: &PyFunction, a: &Answer) -> String {
    let (file, name, spec) = (&f.file, &f.function, f.spec());
    let what = format!("[worker] `{key} = \"{spec}\"`");
    if a.stage == "lookup" {
        if a.error.starts_with("AttributeError") {
            let hint = match &a.suggestion {
                Some(s) => {
                    format!("did you mean `{s}`? Fix the name, or define `{name}` in {file}")
                }
                None => format!("fix the name, or define `{name}` in {file}"),
            };
            return format!("{what} names a function {file} does not have; {hint}");
        }
        return format!(
            "{what} does not name a function: {}; name a function defined in {file}",
            a.error
        );
    }
    let hint = if a.error.starts_with("ModuleNotFoundError") || a.error.starts_with("ImportError") {
        format!("install what {file} imports for python3, or fix the import")
    } else {
        format!("fix {file}")
    };
    format!(
        "{what} cannot be loaded: importing {file} raised {}; {hint}",
        a.error
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn f(spec: &str) -> PyFunction {
        PyFunction::parse(spec).expect("a function")
    }

    fn failure(checked: Checked) -> CheckFailure {
        match checked {
            Checked::Failed(failure) => failure,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn answers_become_sentences_at_their_key() {
        let (function, init) = (f("work.py:proc"), f("work.py:setpu"));
        let failed = ExitStatus::from_raw(1 << 8);
        let missing = failure(judge(
            &function,
            Some(&init),
            failed,
            br#"{"spec": "work.py:setpu", "stage": "lookup", "error": "AttributeError: work.py has no attribute 'setpu'", "traceback": "AttributeError: work.py has no attribute 'setpu'\n", "suggestion": "setup"}"#,
            b"",
        ));
        assert_eq!(missing.key, Some("init"));
        assert_eq!(
            missing.sentence,
            "[worker] `init = \"work.py:setpu\"` names a function work.py does not have; did you mean `setup`? Fix the name, or define `setpu` in work.py"
        );
        let import = failure(judge(
            &function,
            None,
            failed,
            br#"{"spec": "work.py:proc", "stage": "import", "error": "SyntaxError: invalid syntax", "traceback": "  File \"work.py\", line 1\nSyntaxError: invalid syntax\n"}"#,
            b"",
        ));
        assert_eq!(import.key, Some("python"));
        assert!(
            import
                .sentence
                .ends_with("importing work.py raised SyntaxError: invalid syntax; fix work.py"),
            "{}",
            import.sentence
        );
        assert!(import.traceback.contains("line 1"));
        assert!(matches!(
            judge(
                &function,
                None,
                ExitStatus::from_raw(0),
                b"{\"ok\": true}\n",
                b""
            ),
            Checked::Ok
        ));
    }

    #[test]
    fn an_interpreter_that_dies_without_an_answer_is_a_failure_with_its_stderr() {
        let crashed = failure(judge(
            &f("work.py:f"),
            None,
            ExitStatus::from_raw(libc::SIGSEGV),
            b"",
            b"Fatal Python error: Segmentation fault\n\n",
        ));
        assert!(
            crashed.sentence.contains(
                "before it said whether work.py loads: Fatal Python error: Segmentation fault"
            ),
            "{}",
            crashed.sentence
        );
        assert!(crashed.traceback.starts_with("Fatal Python error"));
    }

    #[test]
    fn other_workers_are_not_checked() {
        let spec = WorkerSpec {
            program: WorkerProgram::Cmd(vec!["./no-such-worker".to_string()]),
            cwd: std::env::temp_dir(),
            env: Vec::new(),
            ready_timeout: crate::worker::READY_TIMEOUT,
            max_result: crate::worker::DEFAULT_MAX_RESULT,
        };
        assert!(matches!(check(&spec), Checked::Ok));
    }
}
