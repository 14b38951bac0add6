//! Limits the system sets for a moment: a start refused for want of descriptors or
//! processes waits for a running task to end, instead of failing the task.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const MANIFEST: &str =
    "[pool]\nworkers = 16\n[each]\nrange = [1, 120]\ncmd = [\"sleep\", \"0.02\"]\n";

/// 120 items of 20 ms on 16 persistent workers, which cannot all start under a low
/// descriptor limit: each holds five of poolscope's.
fn worker_manifest() -> String {
    let items = vec!["\"0.02\""; 120].join(", ");
    format!("[pool]\nworkers = 16\n[worker]\nbuiltin = \"sleep\"\n[each]\ninputs = [{items}]\n")
}

/// `exe run DIR --out OUT` under `ulimit LIMIT`, the shell started by `prefix` (e.g.
/// `setpriv ...`) if any; every task must end ok.
fn run_limited(prefix: &[&str], limit: &str, exe: &Path, dir: &Path, out: &Path) {
    let script = format!("ulimit {limit} && exec \"$0\" run \"$1\" --out \"$2\"");
    let argv: Vec<&str> = prefix
        .iter()
        .copied()
        .chain(["bash", "-c", &script])
        .collect();
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .arg(exe)
        .arg(dir)
        .arg(out)
        .output()
        .expect("sh runs");
    assert!(
        out.join("summary.json").exists(),
        "no summary: {}",
        stderr(&o)
    );
    let s = summary(out);
    assert_eq!(
        s["totals"]["ok"],
        120,
        "under ulimit {limit}: {} {}",
        s["totals"],
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn with_few_descriptors_every_task_still_runs() {
    let dir = task_dir(MANIFEST);
    let out = tempfile::tempdir().expect("tmp");
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_poolscope"));
    run_limited(&[], "-n 48", &exe, dir.path(), out.path());
}

#[test]
fn with_few_descriptors_every_worker_item_still_runs() {
    let dir = task_dir(&worker_manifest());
    let out = tempfile::tempdir().expect("tmp");
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_poolscope"));
    run_limited(&[], "-n 48", &exe, dir.path(), out.path());
    // The limit bit: some slots could not start a worker, and others ran their items.
    let trace = std::fs::read_to_string(out.path().join("trace.json")).expect("trace");
    let started = trace.matches("\"worker started\"").count();
    assert!(
        (1..16).contains(&started),
        "{started} of 16 workers started under ulimit -n 48"
    );
}

#[test]
fn with_few_processes_every_task_still_runs() {
    // The process limit binds users other than root: run as nobody.
    let setpriv = "/usr/bin/setpriv";
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new(setpriv).exists() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let open = tempfile::tempdir().expect("tmp");
    let dir = open.path().join("tasks");
    let out = open.path().join("run");
    for p in [open.path(), &dir, &out] {
        fs::create_dir_all(p).expect("mkdir");
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    fs::write(dir.join("poolscope.toml"), MANIFEST).expect("write manifest");
    // Counted per user across the machine: leave room for what nobody runs already.
    let running = fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            fs::read_to_string(e.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534"))
            })
        })
        .count();
    let limit = format!("-u {}", running + 30);
    let exe = binary_for_anyone(open.path());
    run_limited(
        &[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"],
        &limit,
        &exe,
        &dir,
        &out,
    );
}
