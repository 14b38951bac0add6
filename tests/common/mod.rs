//! Shared helpers for the integration tests: the binary, task directories, waiting.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `poolscope` binary under test.
pub fn app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poolscope"))
}

/// Run `poolscope` with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    app().args(args).output().expect("poolscope runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository's bundled example `name`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/examples")
        .join(name)
}

/// A fresh temporary task directory holding `manifest` as its poolscope.toml.
pub fn task_dir(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("poolscope.toml"), manifest).expect("write manifest");
    dir
}

/// Write an executable script.
pub fn script(path: &Path, body: &str) {
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Poll `cond` every 10 ms until it holds or `limit` passes; true if it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is `pid` a live process (not gone, not a zombie)?
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Send a signal to a process.
pub fn signal(pid: u32, sig: i32) {
    if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
}

/// Parsed `summary.json` of a run directory.
pub fn summary(run_dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(run_dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Rows of a joblog (header checked and dropped), split on tabs.
pub fn joblog(run_dir: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(run_dir.join("joblog.tsv")).expect("joblog.tsv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The summary's entry of task `seq`.
pub fn task(summary: &serde_json::Value, seq: usize) -> &serde_json::Value {
    &summary["tasks"][seq - 1]
}

/// `poolscope run DIR --out OUT` plus `extra` flags, to the end.
pub fn run_into(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("poolscope runs")
}

/// `poolscope run DIR --out OUT` in the background, its output discarded.
pub fn spawn_run(dir: &Path, out: &Path) -> std::process::Child {
    app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn poolscope")
}

/// The PID (as the tests see it) of the process that calls itself `own` inside the PID
/// namespace of poolscope `poolscope`'s tasks, that of the init its guardian started;
/// `own` itself if poolscope keeps no namespace. Tasks record `$$` or `os.getpid()`.
pub fn host_pid(poolscope: u32, own: i32) -> i32 {
    let Some(ns) = task_namespace(poolscope) else {
        return own;
    };
    let found = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let p: i32 = e.file_name().to_str()?.parse().ok()?;
            if fs::read_link(format!("/proc/{p}/ns/pid")).ok()? != ns {
                return None;
            }
            let status = fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let inner: i32 = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))?
                .split_whitespace()
                .last()?
                .parse()
                .ok()?;
            (inner == own).then_some(p)
        });
    found.unwrap_or_else(|| panic!("no process {own} in poolscope {poolscope}'s namespace"))
}

/// The PID namespace (`/proc/PID/ns/pid`'s target) of `poolscope`'s tasks, if it keeps one.
fn task_namespace(poolscope: u32) -> Option<PathBuf> {
    let guardian = child_named(poolscope, "poolscope-guard")?;
    let init = child_named(guardian as u32, "poolscope-init")?;
    fs::read_link(format!("/proc/{init}/ns/pid")).ok()
}

/// A live child of `pid` whose command name is `name`, if there is one.
pub fn child_named(pid: u32, name: &str) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let p: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
        let status = fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse::<u32>()
            .ok()?;
        (comm.trim_end() == name && ppid == pid && alive(p)).then_some(p)
    })
}

/// The environment setting that keeps poolscope's tasks out of a PID namespace: for tests
/// that compare the PIDs tasks see with poolscope's records, which agree only outside one.
pub const NAMESPACE_OFF: (&str, &str) = ("POOLSCOPE_NAMESPACE", "off");

/// A copy of the binary under test in `dir` (which other users must be able to enter),
/// runnable by any user, wherever the build put the original.
pub fn binary_for_anyone(dir: &Path) -> PathBuf {
    let copy = dir.join("poolscope");
    fs::copy(env!("CARGO_BIN_EXE_poolscope"), &copy).expect("copy the binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// `poolscope run DIR --out OUT` outside a PID namespace (see [`NAMESPACE_OFF`]), to be
/// given its output handling and run.
pub fn run_outside_namespace(dir: &Path, out: &Path) -> Command {
    let mut command = app();
    command
        .env(NAMESPACE_OFF.0, NAMESPACE_OFF.1)
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out);
    command
}
