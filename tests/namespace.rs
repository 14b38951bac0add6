//! Tasks run in a PID namespace of their own: they keep their real uid, see their own
//! PIDs, and poolscope records the PIDs `ps` shows outside.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A task that writes its uid, its PID as it sees it, and the PID that /proc/PID/stat
/// gives for that PID (the same one only if /proc is that of the task's namespace).
const MANIFEST: &str = "[[task]]\nsh = \"id -u; echo $$; read p rest < /proc/$$/stat; echo $p\"\n";

/// Run the task directory `dir` into `out` as `poolscope run`, prefixed by `prefix`
/// (e.g. `setpriv ...`); the task's three lines and the summary.
fn run_task(
    prefix: &[&str],
    exe: &Path,
    dir: &Path,
    out: &Path,
) -> (Vec<String>, serde_json::Value) {
    let exe = exe.to_str().expect("utf8");
    let argv: Vec<&str> = prefix
        .iter()
        .copied()
        .chain([exe, "run"])
        .chain([
            dir.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ])
        .collect();
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("poolscope runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = fs::read_to_string(out.join("outputs/1.out")).expect("the task's stdout");
    (printed.lines().map(str::to_string).collect(), summary(out))
}

fn check(lines: &[String], summary: &serde_json::Value, uid: u32) {
    assert_eq!(summary["cleanup"]["pid_namespace"], true, "{summary}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], uid.to_string(), "the task's uid");
    let own: u32 = lines[1].parse().expect("a PID");
    let recorded = summary["tasks"][0]["pid"].as_u64().expect("a recorded PID");
    // A new namespace numbers its processes from 1; poolscope's records keep the PID of
    // its own namespace.
    assert!(
        own < 100,
        "the task saw itself as {own}, not as the first of a namespace"
    );
    assert_ne!(u64::from(own), recorded);
    assert_eq!(
        lines[2], lines[1],
        "the task's /proc is that of its namespace"
    );
}

#[test]
fn as_root_tasks_run_in_a_pid_namespace_and_are_recorded_by_their_outer_pid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let dir = task_dir(MANIFEST);
    let out = tempfile::tempdir().expect("tmp");
    let exe = Path::new(env!("CARGO_BIN_EXE_poolscope"));
    let (lines, summary) = run_task(&[], exe, dir.path(), out.path());
    check(&lines, &summary, 0);
}

#[test]
fn another_user_gets_a_user_namespace_and_keeps_their_uid() {
    // Run as `nobody` through setpriv; only root can switch users.
    let setpriv = Path::new("/usr/bin/setpriv");
    if !nix::unistd::geteuid().is_root() || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let open = tempfile::tempdir().expect("tmp");
    fs::set_permissions(open.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let dir = open.path().join("tasks");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("poolscope.toml"), MANIFEST).expect("write manifest");
    let out = open.path().join("run");
    fs::create_dir(&out).expect("mkdir");
    for p in [&dir, &out] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let prefix = [
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let exe = binary_for_anyone(open.path());
    let (lines, summary) = run_task(&prefix, &exe, &dir, &out);
    check(&lines, &summary, 65534);
}

#[test]
fn without_a_namespace_the_summary_and_the_command_line_say_so() {
    let dir = task_dir("[[task]]\ncmd = [\"true\"]\n");
    let out = tempfile::tempdir().expect("tmp");
    let o = run_outside_namespace(dir.path(), out.path())
        .output()
        .expect("poolscope runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(out.path());
    assert_eq!(s["cleanup"]["pid_namespace"], false, "{s}");
    let note = s["cleanup"]["note"].as_str().expect("a note");
    assert!(note.contains("POOLSCOPE_NAMESPACE=off"), "{note}");
    let err = stderr(&o);
    assert_eq!(err.matches(note).count(), 1, "said once: {err}");
}
