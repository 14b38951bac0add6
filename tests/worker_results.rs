//! Results of persistent workers too large to hold: each is saved to its own file as it
//! arrives, capped at `[worker] max_result` and marked truncated past it, while
//! poolscope's memory stays bounded however large the results are.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;

/// A `cmd` worker answering item N with a JSON string of `size(N)` bytes of `x`, written
/// as it is made (the worker itself holds none of it).
const WORKER: &str = r#"#!/bin/sh
echo '{"ready": true}' >&4
while IFS= read -r line <&3; do
  id=${line#*\"id\":}; id=${id%%,*}
  case $id in
    1|3) n=209715200 ;;
    2) n=10 ;;
    *) n=102400 ;;
  esac
  { printf '{"id":%s,"ok":"' "$id"; head -c "$n" /dev/zero | tr '\0' x; printf '"}\n'; } >&4
done
"#;

const BIG: u64 = 200 << 20;
const CAP: u64 = 1 << 20;

/// Run poolscope to the end: its exit code, stderr and peak RSS in bytes (wait4's
/// rusage: the largest of poolscope and the processes it waited for, here small shells).
fn run_measured(dir: &Path, out: &Path) -> (Option<i32>, String, u64) {
    let mut child = app()
        .arg("run")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
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
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (
        code,
        stderr,
        u64::try_from(usage.ru_maxrss).expect("rss") * 1024,
    )
}

fn results(run_dir: &Path) -> Vec<Value> {
    fs::read_to_string(run_dir.join("results.jsonl"))
        .expect("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a results line is JSON"))
        .collect()
}

#[test]
fn results_past_max_result_are_saved_capped_and_marked_with_memory_bounded() {
    let dir = task_dir(&format!(
        "[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker.sh\"]\nmax_result = \"{}KiB\"\n[each]\nrange = [1, 4]\n",
        CAP >> 10
    ));
    script(&dir.path().join("worker.sh"), WORKER);
    let out = dir.path().join("run");
    let (code, err, rss) = run_measured(dir.path(), &out);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        rss < 100 << 20,
        "poolscope's peak RSS was {} MiB for two results of {} MiB",
        rss >> 20,
        BIG >> 20
    );
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 4);
    let by_task: Vec<Value> = {
        let mut lines = results(&out);
        lines.sort_by_key(|l| l["task"].as_u64());
        lines
    };
    // A small result is held in the records, as ever.
    assert_eq!(by_task[1]["ok"], "x".repeat(10));
    assert_eq!(task(&s, 2)["result"], "x".repeat(10));
    assert!(!out.join("outputs/2.result").exists());
    // The large ones: a file each, holding the first max_result bytes.
    for n in [1, 3] {
        let line = &by_task[n - 1];
        let file = format!("outputs/{n}.result");
        assert_eq!(line["result_file"], file, "{line}");
        assert_eq!(line["result_bytes"], BIG + 2, "{line}");
        assert_eq!(line["result_truncated"], true, "{line}");
        assert!(line.get("ok").is_none(), "{line}");
        let t = task(&s, n);
        assert_eq!(t["status"], "ok");
        assert_eq!(t["result_file"], file);
        assert_eq!(t["result_truncated"], true);
        assert!(t.get("result").is_none());
        let saved = fs::read(out.join(&file)).expect("saved result");
        assert_eq!(saved.len() as u64, CAP);
        assert!(saved.starts_with(b"\"xxx") && saved.ends_with(b"xxx"));
    }
    // Too large to hold, under the cap: whole in its file.
    let line = &by_task[3];
    assert_eq!(line["result_truncated"], false, "{line}");
    let saved = fs::read(out.join("outputs/4.result")).expect("saved result");
    let value: Value = serde_json::from_slice(&saved).expect("a whole result is JSON");
    assert_eq!(value.as_str().map(str::len), Some(102400));
    // The records themselves stay small.
    let records = fs::metadata(out.join("results.jsonl"))
        .expect("results")
        .len()
        + fs::metadata(out.join("summary.json"))
            .expect("summary")
            .len();
    assert!(records < 1 << 20, "{records} bytes of records");
}

#[test]
fn a_long_reply_that_breaks_the_protocol_fails_its_item_and_leaves_no_file() {
    // Item 1's reply goes on past its closing brace; item 2 is answered by a new worker.
    let worker = r#"#!/bin/sh
echo '{"ready": true}' >&4
while IFS= read -r line <&3; do
  id=${line#*\"id\":}; id=${id%%,*}
  if [ "$id" = 1 ]; then
    { printf '{"id":1,"ok":"'; head -c 300000 /dev/zero | tr '\0' x; printf '"} garbage\n'; } >&4
  else
    printf '{"id":%s,"ok":2}\n' "$id" >&4
  fi
done
"#;
    let dir = task_dir("[worker]\ncmd = [\"./worker.sh\"]\n[each]\nrange = [1, 2]\n");
    script(&dir.path().join("worker.sh"), worker);
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &["-j", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&out);
    let error = task(&s, 1)["error"].as_str().expect("an error").to_string();
    assert!(
        error.contains("broke the protocol") && error.contains("closing brace"),
        "{error}"
    );
    assert!(
        error.len() < 1000,
        "the error shows the start of the line only"
    );
    assert_eq!(task(&s, 2)["result"], 2);
    assert!(!out.join("outputs/1.result").exists());
}
