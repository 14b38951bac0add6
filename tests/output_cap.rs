//! A task that writes 1 GiB to stdout: poolscope's memory stays flat and the saved file is
//! capped with a note.

mod common;

use std::process::Stdio;

use common::*;

/// Run poolscope to the end and return its peak RSS in bytes (from wait4's rusage: the
/// largest of poolscope and the processes it waited for, which here are tiny).
fn peak_rss(dir: &std::path::Path, out: &std::path::Path) -> u64 {
    let mut child = app()
        .args(["run", dir.to_str().expect("utf8"), "--out"])
        .arg(out)
        .stdout(Stdio::null())
        // A few lines for one task: they fit in the pipe until the run is over.
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain-old-data out parameters; `child` is never waited on through std.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "wait status {status:#x}; stderr:\n{stderr}"
    );
    std::mem::forget(child);
    u64::try_from(usage.ru_maxrss).expect("rss") * 1024
}

#[test]
fn one_gib_of_stdout_keeps_memory_flat_and_the_file_capped() {
    let small = task_dir("[[task]]\nsh = \"head -c 1000 /dev/zero\"\n");
    let big = task_dir("[[task]]\nsh = \"head -c 1073741824 /dev/zero\"\n");
    let small_out = tempfile::tempdir().expect("tmp");
    let big_out = tempfile::tempdir().expect("tmp");
    let baseline = peak_rss(small.path(), small_out.path());
    let flooded = peak_rss(big.path(), big_out.path());
    let growth = flooded.saturating_sub(baseline);
    assert!(
        growth < 64 * 1024 * 1024,
        "peak RSS grew by {} MiB (baseline {} MiB)",
        growth >> 20,
        baseline >> 20
    );
    let saved = big_out.path().join("outputs/1.out");
    let len = std::fs::metadata(&saved).expect("saved output").len();
    let cap = 100 * 1024 * 1024;
    assert!(len > cap && len < cap + 1024, "saved {len} bytes");
    let mut tail = vec![0u8; 200];
    let file = std::fs::File::open(&saved).expect("open");
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, len - 200).expect("tail");
    let tail = String::from_utf8_lossy(&tail);
    assert!(tail.contains("[poolscope: output truncated"), "{tail}");
    let s = summary(big_out.path());
    assert_eq!(s["tasks"][0]["stdout_bytes"], 1u64 << 30);
    assert_eq!(joblog(big_out.path())[0][5], (1u64 << 30).to_string());
}
