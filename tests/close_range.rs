//! Without close_range(2) (an old kernel, or a seccomp filter that answers ENOSYS), a run
//! still ends: `poolscope run DIR --json | cat` reaches EOF, poolscope exits, the summary
//! is whole, and no process of the run is left behind.
//!
//! A small C library, built here with the system's C compiler and preloaded with
//! `LD_PRELOAD`, makes both `close_range()` and `syscall(SYS_close_range, ...)` fail with
//! ENOSYS. Without a C compiler the tests say so and pass.

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// How long a run may take to close its stdout and exit before it counts as hung. Far more
/// than the run needs: it only keeps a hang from blocking the test forever.
const HANG: Duration = Duration::from_secs(30);

/// How long the run's processes may take to go away after it exited; also only a limit
/// for a leak, not a time the run is held to.
const LEAK: Duration = Duration::from_secs(10);

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static long (*real_syscall)(long, ...);

__attribute__((constructor)) static void find_syscall(void) {
    real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
}

/* Say on stderr that a call was refused. Through the raw system call: the caller may be a
   clone sharing its parent's memory, where the C library's write must not run. */
static void note(void) {
    static const char msg[] = "close_range shim: ENOSYS\n";
    if (real_syscall)
        real_syscall(SYS_write, 2L, (long)msg, (long)(sizeof msg - 1));
}

int close_range(unsigned int first, unsigned int last, int flags) {
    (void)first;
    (void)last;
    (void)flags;
    note();
    errno = ENOSYS;
    return -1;
}

long syscall(long number, ...) {
    if (number == SYS_close_range) {
        note();
        errno = ENOSYS;
        return -1;
    }
    if (!real_syscall) {
        errno = ENOSYS;
        return -1;
    }
    va_list ap;
    va_start(ap, number);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    return real_syscall(number, a, b, c, d, e, f);
}
"#;

/// Calls both ways in and prints what each returned and the errno it left.
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

extern int close_range(unsigned int, unsigned int, int);

int main(void) {
    errno = 0;
    int a = close_range(1000, 1001, 0);
    int ea = errno;
    errno = 0;
    long b = syscall(SYS_close_range, 1000, 1001, 0);
    int eb = errno;
    printf("%d %d %ld %d\n", a, ea, b, eb);
    return 0;
}
"#;

/// A C compiler that runs: $CC, else cc, gcc or clang.
fn c_compiler() -> Option<String> {
    let candidates = std::env::var("CC")
        .ok()
        .into_iter()
        .chain(["cc", "gcc", "clang"].map(String::from));
    candidates.into_iter().find(|cc| {
        Command::new(cc)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn compile(cc: &str, args: &[&str], source: &Path, output: &Path) {
    let o = Command::new(cc)
        .args(args)
        .arg("-o")
        .arg(output)
        .arg(source)
        .arg("-ldl")
        .output()
        .expect("run the C compiler");
    assert!(
        o.status.success(),
        "{cc} failed on {}: {}",
        source.display(),
        stderr(&o)
    );
}

/// The shim built in `dir`, checked to refuse close_range both ways; None (said on
/// stderr) without a C compiler.
fn shim(dir: &Path) -> Option<PathBuf> {
    let Some(cc) = c_compiler() else {
        eprintln!("no C compiler found ($CC, cc, gcc, clang): close_range test skipped");
        return None;
    };
    let (source, library) = (dir.join("shim.c"), dir.join("shim.so"));
    fs::write(&source, SHIM).expect("write shim.c");
    compile(&cc, &["-shared", "-fPIC", "-O2"], &source, &library);
    let (probe_source, probe) = (dir.join("probe.c"), dir.join("probe"));
    fs::write(&probe_source, PROBE).expect("write probe.c");
    compile(&cc, &["-O2"], &probe_source, &probe);
    let o = Command::new(&probe)
        .env("LD_PRELOAD", &library)
        .output()
        .expect("run the probe");
    assert_eq!(
        stdout(&o).trim(),
        format!("-1 {0} -1 {0}", libc::ENOSYS),
        "the shim does not refuse close_range: {}",
        stderr(&o)
    );
    Some(library)
}

/// Live processes that belong to the run of poolscope `pid` on task directory `dir`: the
/// recorded task PIDs, those carrying `pid`'s marker (`POOLSCOPE_GUARD=<pid>-...`), and
/// those whose command line names `dir` (poolscope's own helpers: the guardian, the
/// stand-in).
fn leftovers(pid: u32, dir: &Path, recorded: &[i32]) -> Vec<(i32, String)> {
    let marker = format!("POOLSCOPE_GUARD={pid}-");
    let dir = dir.to_str().expect("utf8 path");
    let me = std::process::id() as i32;
    let mut left: Vec<i32> = recorded.iter().copied().filter(|&p| alive(p)).collect();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if p == me || left.contains(&p) || !alive(p) {
            continue;
        }
        let has = |file: &str, needle: &str| {
            fs::read(format!("/proc/{p}/{file}")).is_ok_and(|bytes| {
                bytes
                    .split(|&b| b == 0)
                    .any(|part| String::from_utf8_lossy(part).contains(needle))
            })
        };
        if has("environ", &marker) || has("cmdline", dir) {
            left.push(p);
        }
    }
    left.into_iter()
        .map(|p| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            (p, comm.trim_end().to_string())
        })
        .collect()
}

/// The other processes that hold the pipe `pipe` (as `/proc/PID/fd` shows it: `pipe:[N]`)
/// open.
fn holders(pipe: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if p == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.to_str() == Some(pipe)))
        {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            found.push((p, comm.trim_end().to_string()));
        }
    }
    found
}

/// How many close_range calls the shim refused, as it noted them on stderr (the helpers
/// poolscope starts with their stderr on /dev/null are not counted).
fn refused(err_path: &Path) -> usize {
    fs::read_to_string(err_path)
        .unwrap_or_default()
        .matches("close_range shim: ENOSYS")
        .count()
}

fn kill_all(procs: &[(i32, String)]) {
    for &(p, _) in procs {
        signal(p as u32, libc::SIGKILL);
    }
}

/// The PIDs the tasks wrote into `pids`, one per file.
fn recorded_pids(pids: &Path) -> Vec<i32> {
    fs::read_dir(pids)
        .expect("pid folder")
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

/// `poolscope run DIR --json` with close_range refused, its stdout read to EOF as
/// `| cat` would; checks that it ends, exits 0, prints a whole summary of `tasks` ok
/// tasks, and leaves no process behind. The tasks write their PIDs into `pids`.
fn run_without_close_range(dir: &Path, pids: &Path, tasks: usize) {
    let scratch = tempfile::tempdir().expect("tmp");
    let Some(library) = shim(scratch.path()) else {
        return;
    };
    let out = tempfile::tempdir().expect("tmp");
    let err_path = scratch.path().join("stderr.txt");
    let mut child = app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out.path())
        .arg("--json")
        .env("LD_PRELOAD", &library)
        // The PIDs the tasks record are the tests' own only outside a PID namespace; in
        // one, nothing outlives poolscope whatever close_range does.
        .env(NAMESPACE_OFF.0, NAMESPACE_OFF.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn poolscope");
    let pid = child.id();
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let pipe = fs::read_link(format!("/proc/self/fd/{}", stdout_pipe.as_raw_fd()))
        .expect("stdout pipe")
        .display()
        .to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = stdout_pipe.read_to_end(&mut bytes);
        let _ = tx.send(read.map(|_| bytes));
    });

    let Ok(read) = rx.recv_timeout(HANG) else {
        let holding = holders(&pipe);
        let left = leftovers(pid, dir, &recorded_pids(pids));
        let status = child.try_wait().ok().flatten();
        kill_all(&left);
        signal(pid, libc::SIGKILL);
        let _ = child.wait();
        panic!(
            "poolscope's stdout did not reach EOF within {HANG:?} (poolscope {}, {} \
             close_range calls refused); held open by {holding:?}; the run's processes \
             still there: {left:?}",
            match status {
                Some(s) => format!("exited: {s}"),
                None => "still running".to_string(),
            },
            refused(&err_path)
        );
    };
    let bytes = read.expect("read poolscope's stdout");
    let mut status = None;
    wait_for(HANG, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let Some(status) = status else {
        let left = leftovers(pid, dir, &recorded_pids(pids));
        kill_all(&left);
        signal(pid, libc::SIGKILL);
        let _ = child.wait();
        panic!("poolscope closed its stdout but did not exit within {HANG:?}; {left:?}");
    };
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    eprintln!("close_range calls refused: {}", refused(&err_path));
    assert_eq!(status.code(), Some(0), "poolscope: {status}; stderr: {err}");

    // The summary on stdout is whole, and is the one in the run directory.
    let text = String::from_utf8(bytes).expect("stdout is UTF-8");
    let printed: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON summary ({e}): {text:?}"));
    assert_eq!(printed["totals"]["tasks"], tasks, "{printed}");
    assert_eq!(printed["totals"]["ok"], tasks, "{printed}");
    assert_eq!(printed["interrupted"], false, "{printed}");
    let entries = printed["tasks"].as_array().expect("tasks");
    assert_eq!(entries.len(), tasks, "{printed}");
    for t in entries {
        assert_eq!(t["status"], "ok", "{t}");
    }
    assert_eq!(
        printed,
        summary(out.path()),
        "stdout and summary.json differ"
    );

    // Every task recorded its PIDs; none of them, and nothing else of the run, is left.
    let recorded = recorded_pids(pids);
    assert!(
        recorded.len() >= tasks,
        "the tasks recorded {recorded:?}, expected at least {tasks} PIDs"
    );
    let mut left = Vec::new();
    wait_for(LEAK, || {
        left = leftovers(pid, dir, &recorded);
        left.is_empty()
    });
    kill_all(&left);
    assert!(
        left.is_empty(),
        "left behind after poolscope exited: {left:?}"
    );
}

#[test]
fn without_close_range_a_run_of_commands_ends_and_leaves_nothing() {
    // Each task records its own PID and that of a background child that keeps its
    // output open.
    let dir = task_dir("");
    let pids = dir.path().join("pids");
    fs::create_dir(&pids).expect("pid folder");
    fs::write(
        dir.path().join("poolscope.toml"),
        format!(
            "[pool]\nworkers = 2\n\n[each]\nrange = [1, 4]\nsh = \"echo $$ > {0}/main-{{}}; \
             sleep 300 & echo $! > {0}/child-{{}}; sleep 0.2\"\n",
            pids.display()
        ),
    )
    .expect("write manifest");
    run_without_close_range(dir.path(), &pids, 4);
}

#[test]
fn without_close_range_a_run_of_python_workers_ends_and_leaves_nothing() {
    let dir = task_dir("");
    let pids = dir.path().join("pids");
    fs::create_dir(&pids).expect("pid folder");
    fs::write(
        dir.path().join("poolscope.toml"),
        "[pool]\nworkers = 2\n\n[worker]\npython = \"work.py:f\"\n\n[each]\nrange = [1, 4]\n",
    )
    .expect("write manifest");
    fs::write(
        dir.path().join("work.py"),
        format!(
            "import os\n\n\ndef f(n):\n    with open(f\"{}/worker-{{n}}\", \"w\") as w:\n        \
             w.write(str(os.getpid()))\n    return n\n",
            pids.display()
        ),
    )
    .expect("write work.py");
    run_without_close_range(dir.path(), &pids, 4);
}
