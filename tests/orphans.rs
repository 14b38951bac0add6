//! Never an orphan: however poolscope ends, every process a run started is gone within
//! 1 s, including background children, double-forked grandchildren and setsid escapees.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A task that leaves three kinds of descendants and records every PID.
const SPAWNER: &str = r#"#!/bin/sh
d="$1"
n="$POOLSCOPE_TASK"
sleep 300 & echo $! > "$d/child-$n"
( sleep 300 & echo $! > "$d/double-fork-$n" )
setsid sleep 300 & echo $! > "$d/setsid-$n"
echo $$ > "$d/main-$n"
exec sleep 300
"#;

fn spawner_dir(pids: &Path) -> tempfile::TempDir {
    let dir = task_dir(&format!(
        "[pool]\nworkers = 2\n\n[each]\nrange = [1, 2]\ncmd = [\"./spawner.sh\", \"{}\"]\n",
        pids.display()
    ));
    script(&dir.path().join("spawner.sh"), SPAWNER);
    dir
}

/// Wait until the two tasks wrote their eight PIDs, and return them.
fn recorded_pids(pids: &Path) -> Vec<i32> {
    let all_there = wait_for(Duration::from_secs(20), || {
        fs::read_dir(pids).map_or(0, |d| d.count()) == 8
            && fs::read_dir(pids).into_iter().flatten().flatten().all(|e| {
                fs::read_to_string(e.path()).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
            })
    });
    assert!(all_there, "the tasks did not record their PIDs");
    let list: Vec<i32> = fs::read_dir(pids)
        .expect("pids")
        .flatten()
        .map(|e| {
            fs::read_to_string(e.path())
                .expect("pid file")
                .trim()
                .parse()
                .expect("pid")
        })
        .collect();
    for &pid in &list {
        assert!(alive(pid), "{pid} should be running before poolscope dies");
    }
    list
}

/// Run `dir`, wait until its tasks recorded their PIDs in `pids`, `kill -9` poolscope,
/// and check that every recorded process is gone within a second.
fn kill_9_mid_run_leaves_nothing(dir: &Path, pids: &Path) {
    let out = tempfile::tempdir().expect("tmp");
    let mut child = spawn_run(dir, out.path());
    let list = recorded_pids(pids);
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    assert_all_gone_within_a_second(&list);
}

fn assert_all_gone_within_a_second(pids: &[i32]) {
    std::thread::sleep(Duration::from_secs(1));
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    for &p in &left {
        signal(p as u32, libc::SIGKILL);
    }
    assert!(left.is_empty(), "still alive 1 s later: {left:?}");
}

#[test]
fn kill_9_of_poolscope_leaves_nothing_behind() {
    let pids = tempfile::tempdir().expect("tmp");
    let dir = spawner_dir(pids.path());
    kill_9_mid_run_leaves_nothing(dir.path(), pids.path());
}

#[test]
fn ctrl_c_kills_the_tasks_records_them_and_exits_130() {
    let pids = tempfile::tempdir().expect("tmp");
    let dir = spawner_dir(pids.path());
    let out = tempfile::tempdir().expect("tmp");
    let child = app()
        .args(["run", dir.path().to_str().expect("utf8"), "--out"])
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poolscope");
    let list = recorded_pids(pids.path());
    signal(child.id(), libc::SIGINT);
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_all_gone_within_a_second(&list);
    // What was running is recorded as cancelled, not lost.
    let s = summary(out.path());
    assert_eq!(s["interrupted"], true);
    assert_eq!(joblog(out.path()).len(), 2);
}

#[test]
fn a_finished_task_leaves_no_process_behind() {
    let pids = tempfile::tempdir().expect("tmp");
    let dir = task_dir(&format!(
        "[[task]]\nsh = \"sleep 300 & echo $! > {0}/bg; setsid sleep 300 & echo $! > {0}/escapee; ( sleep 300 & echo $! > {0}/double ); echo done\"\n",
        pids.path().display()
    ));
    let out = tempfile::tempdir().expect("tmp");
    let o = run_into(dir.path(), out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list: Vec<i32> = ["bg", "escapee", "double"]
        .iter()
        .map(|f| {
            fs::read_to_string(pids.path().join(f))
                .expect("pid")
                .trim()
                .parse()
                .expect("pid")
        })
        .collect();
    // SIGKILL is delivered at once but a process takes a moment to die: allow 1 s.
    wait_for(Duration::from_secs(1), || list.iter().all(|&p| !alive(p)));
    let left: Vec<i32> = list.iter().copied().filter(|&p| alive(p)).collect();
    for &p in &left {
        signal(p as u32, libc::SIGKILL);
    }
    assert!(left.is_empty(), "left behind 1 s after the run: {left:?}");
    assert_eq!(summary(out.path())["tasks"][0]["status"], "ok");
}

/// The guardian child of `pid`, if there is one.
fn guardian_of(pid: u32) -> Option<i32> {
    child_called(pid, "poolscope-guard")
}

/// A live child of `pid` whose command name is `name`, if there is one.
fn child_called(pid: u32, name: &str) -> Option<i32> {
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

/// What each open descriptor of process `pid` refers to (`pipe:[123]`, a path, …).
fn open_files(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd list")
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

/// A running `poolscope run` of one `sleep 30` task, its output piped, and its child
/// called `name` once there is one. If none comes within 5 s, poolscope is killed and the
/// test fails. The two folders must outlive the run.
fn run_and_its_child_called(
    name: &str,
) -> (
    std::process::Child,
    i32,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let dir = task_dir("[[task]]\ncmd = [\"sleep\", \"30\"]\n");
    let out = tempfile::tempdir().expect("tmp");
    let mut child = app()
        .arg("run")
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poolscope");
    let mut found = None;
    wait_for(Duration::from_secs(5), || {
        found = child_called(child.id(), name);
        found.is_some()
    });
    let Some(found) = found else {
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        panic!("no child called {name} found");
    };
    (child, found, dir, out)
}

#[test]
fn the_guardian_holds_none_of_poolscopes_files() {
    // A reader of poolscope's output must not wait for the guardian, and Ctrl-C in the
    // terminal must not reach it.
    let (mut child, guardian, _dir, _out) = run_and_its_child_called("poolscope-guard");
    let pid = child.id() as i32;
    let mine = open_files(pid);
    let its = open_files(guardian);
    let pgid = |p: i32| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).ok();
    let (own_group, poolscope_group) = (pgid(guardian), pgid(pid));
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let shared: Vec<&String> = its
        .iter()
        .filter(|f| f.starts_with("pipe:") && mine.contains(f))
        .collect();
    // Its stdin and stdout are the two pipes that tie it to poolscope, its stderr is
    // /dev/null, and it has nothing else open.
    assert_eq!(its.len(), 3, "the guardian has open: {its:?}");
    assert_eq!(shared.len(), 2, "guardian {its:?}, poolscope {mine:?}");
    assert!(its.contains(&"/dev/null".to_string()), "{its:?}");
    assert_eq!(
        own_group,
        Some(nix::unistd::Pid::from_raw(guardian)),
        "the guardian leads its own process group"
    );
    assert_ne!(own_group, poolscope_group);
}

#[test]
fn a_killed_guardian_is_replaced() {
    let pids = tempfile::tempdir().expect("tmp");
    let dir = spawner_dir(pids.path());
    let out = tempfile::tempdir().expect("tmp");
    let mut child = spawn_run(dir.path(), out.path());
    let list = recorded_pids(pids.path());
    let first = guardian_of(child.id()).expect("a guardian runs");
    signal(first as u32, libc::SIGKILL);
    let replaced = wait_for(Duration::from_secs(5), || {
        guardian_of(child.id()).is_some_and(|g| g != first)
    });
    assert!(replaced, "no new guardian after the first was killed");
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    assert_all_gone_within_a_second(&list);
}

#[test]
fn kill_9_of_poolscope_leaves_no_worker_behind() {
    // Two persistent Python workers, each of whose items leaves the same three kinds of
    // descendants as the spawner script, then waits.
    let pids = tempfile::tempdir().expect("tmp");
    let dir =
        task_dir("[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 2]\n");
    fs::write(
        dir.path().join("work.py"),
        format!(
            r#"import os, subprocess, time
D = {:?}
def f(n):
    def put(kind, pid):
        with open(f"{{D}}/{{kind}}-{{n}}.tmp", "w") as w:
            w.write(str(pid))
        os.rename(f"{{D}}/{{kind}}-{{n}}.tmp", f"{{D}}/{{kind}}-{{n}}")
    put("child", subprocess.Popen(["sleep", "300"]).pid)
    subprocess.run(["sh", "-c", f"sleep 300 & echo $! > {{D}}/double-fork-{{n}}"])
    put("setsid", subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
    put("worker", os.getpid())
    time.sleep(300)
"#,
            pids.path().display().to_string()
        ),
    )
    .expect("write work.py");
    kill_9_mid_run_leaves_nothing(dir.path(), pids.path());
}
