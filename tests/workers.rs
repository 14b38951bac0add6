//! Persistent workers (DESIGN §3) with real worker processes: Python through the adapter,
//! poolscope's own kernels, and a hand-written protocol worker.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A task directory with `manifest` and a `work.py` holding `python`.
fn python_dir(manifest: &str, python: &str) -> tempfile::TempDir {
    let dir = task_dir(manifest);
    fs::write(dir.path().join("work.py"), python).expect("write work.py");
    dir
}

/// `results.jsonl` of a run, one JSON value per line.
fn results(run_dir: &Path) -> Vec<Value> {
    fs::read_to_string(run_dir.join("results.jsonl"))
        .expect("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a results line is JSON"))
        .collect()
}

/// Distinct worker PIDs the summary lists.
fn worker_pids(summary: &Value) -> BTreeSet<u64> {
    summary["workers"]
        .as_array()
        .expect("workers listed")
        .iter()
        .map(|w| w["pid"].as_u64().expect("pid"))
        .collect()
}

#[test]
fn results_come_back_in_task_order() {
    let dir = python_dir(
        "[pool]\nworkers = 3\n[worker]\npython = \"work.py:square\"\n[each]\nrange = [1, 60]\n",
        "import time\ndef square(x):\n    time.sleep(0.001 * (x % 4))\n    return {'x': x, 'sq': x * x}\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    let tasks = s["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 60);
    for (i, t) in tasks.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(t["seq"], n);
        assert_eq!(t["result"]["x"], n, "task {n} holds its own item's result");
        assert_eq!(t["result"]["sq"], n * n);
    }
    // results.jsonl: every task exactly once, as the replies arrived, with its own value.
    let lines = results(&out);
    assert_eq!(lines.len(), 60);
    let seen: BTreeSet<u64> = lines
        .iter()
        .map(|l| {
            let n = l["task"].as_u64().expect("task");
            assert_eq!(l["ok"]["sq"], n * n);
            n
        })
        .collect();
    assert_eq!(seen, (1..=60).collect());
    // Three slots, three workers, each stable for the whole run.
    assert_eq!(worker_pids(&s).len(), 3);
}

#[test]
fn exceptions_arrive_with_their_traceback() {
    let dir = python_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 10]\n",
        "def helper(x):\n    raise KeyError(f'no entry for {x}')\n\ndef f(x):\n    if x in (4, 9):\n        helper(x)\n    return x\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "failed tasks exit 1");
    let s = summary(&out);
    for seq in [4, 9] {
        let t = task(&s, seq);
        assert_eq!(t["status"], "failed");
        let error = t["error"].as_str().expect("error text");
        assert!(
            error.starts_with("Traceback (most recent call last)"),
            "{error}"
        );
        assert!(error.contains("in helper"), "the whole stack: {error}");
        assert!(
            error.contains(&format!("KeyError: 'no entry for {seq}'")),
            "{error}"
        );
        let saved = fs::read_to_string(out.join(format!("outputs/{seq}.err"))).expect(".err");
        assert!(
            saved.contains("KeyError"),
            "the traceback is the task's stderr"
        );
    }
    assert_eq!(s["totals"]["ok"], 8);
    assert!(
        stderr(&o).contains("KeyError: 'no entry for 4'"),
        "{}",
        stderr(&o)
    );
    let errors: Vec<u64> = results(&out)
        .iter()
        .filter(|l| l.get("error").is_some())
        .map(|l| l["task"].as_u64().expect("task"))
        .collect();
    assert_eq!(errors.len(), 2);
}

#[test]
fn a_worker_killed_mid_task_fails_that_task_only() {
    // Item 5 writes its worker's PID and waits; the test kills that worker with SIGKILL.
    let dir = python_dir(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 12]\n",
        "import os, time\ndef f(x):\n    if x == 5:\n        with open('victim.tmp', 'w') as w:\n            w.write(str(os.getpid()))\n        os.rename('victim.tmp', 'victim')\n        time.sleep(60)\n    return x\n",
    );
    let out = dir.path().join("run");
    let mut child = spawn_run(dir.path(), &out);
    let victim = dir.path().join("victim");
    assert!(wait_for(Duration::from_secs(30), || victim.exists()));
    let own: i32 = fs::read_to_string(&victim)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    let pid = host_pid(child.id(), own) as u32;
    signal(pid, libc::SIGKILL);
    let status = child.wait().expect("poolscope ends");
    assert_eq!(status.code(), Some(1));
    let s = summary(&out);
    let t = task(&s, 5);
    assert_eq!(t["status"], "failed");
    assert_eq!(t["signal"], 9);
    assert_eq!(t["pid"], pid);
    assert_eq!(s["totals"]["ok"], 11, "every other task ran");
    let killed = s["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .find(|w| w["pid"] == pid)
        .expect("the killed worker is listed");
    let exit = killed["exit"].as_str().expect("why it left");
    assert!(
        exit.contains("died on task 5") && exit.contains("SIGKILL"),
        "{exit}"
    );
    assert_eq!(worker_pids(&s).len(), 2, "the dead worker was replaced");
    let trace: Value =
        serde_json::from_str(&fs::read_to_string(out.join("trace.json")).expect("trace.json"))
            .expect("trace is JSON");
    let gone = trace["traceEvents"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["ph"] == "i" && e["name"] == "worker gone" && e["args"]["os_pid"] == pid)
        .expect("the trace marks the worker's death on its slot's track");
    assert!(
        gone["args"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("died on task 5"))
    );
    assert_eq!(task(&s, 4)["pid"], pid, "the worker ran the items before");
    let replacement = task(&s, 6)["pid"].as_u64().expect("pid");
    assert_ne!(
        replacement,
        u64::from(pid),
        "a new worker ran the items after"
    );
}

#[test]
fn a_killed_item_is_retried_on_a_new_worker() {
    // The first attempt of item 3 kills its own worker; the retry runs on its replacement.
    let dir = python_dir(
        "[pool]\nworkers = 1\nretries = 1\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 5]\n",
        "import os, signal\ndef f(x):\n    if x == 3 and not os.path.exists('tried'):\n        open('tried', 'w').close()\n        os.kill(os.getpid(), signal.SIGKILL)\n    return os.getpid()\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    let t = task(&s, 3);
    assert_eq!(t["status"], "ok");
    assert_eq!(t["attempts"], 2);
    let first_worker = task(&s, 1)["result"].as_u64().expect("pid");
    let retry_worker = t["result"].as_u64().expect("pid");
    assert_ne!(
        first_worker, retry_worker,
        "the retry ran on the new worker"
    );
    assert_eq!(worker_pids(&s).len(), 2);
}

#[test]
fn max_tasks_per_worker_recycles_workers() {
    let dir = python_dir(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:pid\"\nmax_tasks_per_worker = 3\n[each]\nrange = [1, 10]\n",
        "import os\ndef pid(x):\n    return os.getpid()\n",
    );
    let out = dir.path().join("run");
    let o = run_outside_namespace(dir.path(), &out)
        .output()
        .expect("poolscope runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    let pids: Vec<u64> = (1..=10)
        .map(|seq| task(&s, seq)["result"].as_u64().expect("a pid"))
        .collect();
    let distinct: BTreeSet<u64> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "10 tasks, 3 per worker: {pids:?}");
    for chunk in pids.chunks(3) {
        assert!(chunk.iter().all(|p| *p == chunk[0]), "{pids:?}");
    }
    assert_eq!(
        worker_pids(&s),
        distinct,
        "the summary lists the same workers"
    );
    let recycled = s["workers"].as_array().expect("workers")[0]["exit"]
        .as_str()
        .expect("exit")
        .to_string();
    assert!(recycled.contains("recycled after 3 items"), "{recycled}");
}

#[test]
fn init_runs_once_per_worker() {
    let dir = python_dir(
        "[pool]\nworkers = 2\nmax_tasks_per_worker = 5\n[worker]\npython = \"work.py:f\"\ninit = \"work.py:setup\"\n[each]\nrange = [1, 20]\n",
        "import os\nREADY = False\ndef setup():\n    global READY\n    with open('inits', 'a') as log:\n        log.write(f'{os.getpid()}\\n')\n    READY = True\ndef f(x):\n    assert READY\n    return os.getpid()\n",
    );
    let out = dir.path().join("run");
    let o = run_outside_namespace(dir.path(), &out)
        .output()
        .expect("poolscope runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inits: Vec<u64> = fs::read_to_string(dir.path().join("inits"))
        .expect("inits")
        .lines()
        .map(|l| l.parse().expect("pid"))
        .collect();
    let s = summary(&out);
    let workers = worker_pids(&s);
    assert_eq!(inits.len(), workers.len(), "one init per worker: {inits:?}");
    assert_eq!(inits.iter().copied().collect::<BTreeSet<_>>(), workers);
    assert!(workers.len() >= 4, "20 items, 5 per worker");
}

#[test]
fn a_worker_printing_does_not_disturb_the_protocol() {
    // Prints that look like protocol lines, to both streams, unflushed and flushed.
    let dir = python_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 30]\n",
        "import sys\ndef f(x):\n    print(f'item {x} says hello')\n    print('{\"id\": 999, \"ok\": \"forged\"}')\n    print(f'warning from {x}', file=sys.stderr)\n    return x + 1000\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    for seq in 1..=30u64 {
        let t = task(&s, seq as usize);
        assert_eq!(t["result"], seq + 1000);
        let printed = fs::read_to_string(out.join(format!("outputs/{seq}.out"))).expect(".out");
        assert_eq!(
            printed,
            format!("item {seq} says hello\n{{\"id\": 999, \"ok\": \"forged\"}}\n"),
            "task {seq}'s stdout is its own"
        );
        let warned = fs::read_to_string(out.join(format!("outputs/{seq}.err"))).expect(".err");
        assert_eq!(warned, format!("warning from {seq}\n"));
    }
}

#[test]
fn garbage_on_fd_4_marks_the_worker_broken() {
    // A hand-written worker that answers item 2 with garbage.
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 4]\n");
    script(
        &dir.path().join("worker"),
        "#!/usr/bin/env python3\nimport json, os\nitems = os.fdopen(3)\nout = os.fdopen(4, 'w')\nout.write('{\"ready\": true}\\n'); out.flush()\nfor line in items:\n    item = json.loads(line)\n    if item['input'] == 2:\n        out.write('Segmentation fault (core dumped) ' + 'x' * 500 + '\\n')\n    else:\n        out.write(json.dumps({'id': item['id'], 'ok': os.getpid()}) + '\\n')\n    out.flush()\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&out);
    let t = task(&s, 2);
    assert_eq!(t["status"], "failed");
    let error = t["error"].as_str().expect("error");
    assert!(error.contains("broke the protocol"), "{error}");
    assert!(
        error.contains("Segmentation fault (core dumped) xxx"),
        "shows the bytes: {error}"
    );
    assert!(
        error.len() < 600,
        "the bytes are cut short: {} bytes",
        error.len()
    );
    assert_eq!(s["totals"]["ok"], 3, "the other items ran on a new worker");
    assert_ne!(
        task(&s, 1)["result"],
        task(&s, 3)["result"],
        "replaced: new PID"
    );
}

#[test]
fn a_worker_past_its_timeout_is_replaced_and_the_item_times_out() {
    let dir = python_dir(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:f\"\ntimeout = \"500ms\"\n[each]\nrange = [1, 4]\n",
        "import time\ndef f(x):\n    if x == 2:\n        time.sleep(60)\n    return x\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(task(&s, 2)["status"], "timed_out");
    assert_eq!(s["totals"]["ok"], 3);
    assert_eq!(worker_pids(&s).len(), 2);
}

#[test]
fn builtin_kernels_answer_their_items() {
    let dir = task_dir(
        "[pool]\nworkers = 2\n[worker]\nbuiltin = \"primes\"\n[each]\ninputs = [\"100\", \"280000\", \"ten\"]\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(task(&s, 1)["result"], 25);
    assert_eq!(task(&s, 2)["result"], 24432);
    let error = task(&s, 3)["error"].as_str().expect("error");
    assert!(error.contains("primes"), "{error}");
}

#[test]
fn tiny_tasks_all_reach_the_records() {
    let out = tempfile::tempdir().expect("temp dir");
    let run_dir = out.path().join("run");
    let o = run_into(&example("tiny-tasks"), &run_dir, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&run_dir);
    assert_eq!(s["totals"]["ok"], 100_000);
    assert_eq!(joblog(&run_dir).len(), 100_000);
    assert_eq!(results(&run_dir).len(), 100_000);
    let trace: Value =
        serde_json::from_str(&fs::read_to_string(run_dir.join("trace.json")).expect("trace.json"))
            .expect("trace is JSON");
    let bars = trace["traceEvents"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == 1)
        .count();
    assert_eq!(bars, 100_000, "every item is on the timeline");
    assert_eq!(worker_pids(&s).len(), 2, "two workers did it all");
}

#[test]
fn a_worker_that_never_gets_ready_fails_its_items_in_time() {
    // No item timeout: the ready timeout alone ends each start, and after two alike no
    // worker starts again, so the run ends.
    let dir = task_dir(
        "[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\nready_timeout = \"300ms\"\n[each]\nrange = [1, 6]\n",
    );
    script(&dir.path().join("worker"), "#!/bin/sh\nexec sleep 60\n");
    let out = dir.path().join("run");
    let mut child = spawn_run(dir.path(), &out);
    let ended = wait_for(Duration::from_secs(30), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ended {
        signal(child.id(), libc::SIGKILL);
    }
    assert!(ended, "the run did not end within 30 s");
    assert_eq!(child.wait().expect("status").code(), Some(1));
    let s = summary(&out);
    for seq in 1..=2 {
        let error = task(&s, seq)["error"].as_str().expect("error");
        assert!(
            error.contains("did not say {\"ready\": true} within 0.3"),
            "{seq}: {error}"
        );
    }
    for seq in 3..=6 {
        let outcome = task(&s, seq)["outcome"].as_str().expect("outcome");
        assert!(
            outcome.contains("did not say {\"ready\": true}")
                && outcome.contains("no worker starts again"),
            "{seq}: {outcome}"
        );
    }
    assert_eq!(
        worker_pids(&s).len(),
        2,
        "two starts failed alike, then none"
    );
}

#[test]
fn ctrl_c_stops_a_run_whose_workers_are_still_starting() {
    let dir = python_dir(
        "[pool]\nworkers = 2\n[worker]\npython = \"work.py:f\"\ninit = \"work.py:setup\"\n[each]\nrange = [1, 4]\n",
        "import time\ndef setup():\n    time.sleep(60)\ndef f(x):\n    return x\n",
    );
    let out = dir.path().join("run");
    let mut child = spawn_run(dir.path(), &out);
    std::thread::sleep(Duration::from_millis(500));
    signal(child.id(), libc::SIGINT);
    let mut status = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            status = child.try_wait().expect("wait");
            status.is_some()
        }),
        "the run did not stop"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 0);
    assert_eq!(s["totals"]["skipped"], 4, "nothing ran: {}", s["totals"]);
}

#[test]
fn a_recycled_worker_that_does_not_exit_is_killed() {
    // init starts a thread that is not a daemon: Python waits for it at exit, for ever.
    let dir = python_dir(
        "[pool]\nworkers = 1\n[worker]\npython = \"work.py:f\"\ninit = \"work.py:setup\"\nmax_tasks_per_worker = 1\n[each]\nrange = [1, 2]\n",
        "import threading, time\ndef setup():\n    threading.Thread(target=time.sleep, args=(600,)).start()\ndef f(x):\n    return x\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 2);
    let first = s["workers"].as_array().expect("workers")[0]["exit"]
        .as_str()
        .expect("exit")
        .to_string();
    assert!(
        first.contains("recycled after 1 items") && first.contains("killed"),
        "{first}"
    );
}

#[test]
fn a_worker_that_closes_its_replies_is_broken() {
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 3]\n");
    script(
        &dir.path().join("worker"),
        "#!/usr/bin/env python3\nimport json, os, time\nitems = os.fdopen(3)\nos.write(4, b'{\"ready\": true}\\n')\nfor line in items:\n    item = json.loads(line)\n    if item['input'] == 2:\n        os.close(4)\n        time.sleep(60)\n    os.write(4, (json.dumps({'id': item['id'], 'ok': item['input']}) + '\\n').encode())\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&out);
    let error = task(&s, 2)["error"].as_str().expect("error");
    assert!(error.contains("closed its fd 4"), "{error}");
    assert_eq!(task(&s, 1)["result"], 1);
    assert_eq!(task(&s, 3)["result"], 3, "a new worker took the rest");
}

#[test]
fn a_kernel_answers_each_item_before_it_starts_the_next() {
    // Item 1 is instant; item 2 outlasts its limit. Item 1's reply must not wait for it.
    let dir = task_dir(
        "[pool]\nworkers = 1\n[worker]\nbuiltin = \"sleep\"\ntimeout = \"1s\"\n[each]\ninputs = [\"0\", \"1.5\", \"0\"]\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(task(&s, 1)["status"], "ok");
    assert_eq!(task(&s, 2)["status"], "timed_out");
    assert_eq!(task(&s, 3)["status"], "ok");
}

#[test]
fn a_worker_that_dies_right_after_ready_is_not_restarted_for_ever() {
    // Each worker says it is ready and exits at once: every item fails, each with one
    // worker, and the run ends.
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 3]\n");
    script(
        &dir.path().join("worker"),
        "#!/bin/sh\necho '{\"ready\": true}' >&4\nexit 3\n",
    );
    let out = dir.path().join("run");
    let mut child = spawn_run(dir.path(), &out);
    let mut status = None;
    let ended = wait_for(Duration::from_secs(30), || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    assert!(ended, "the run did not end");
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    let s = summary(&out);
    assert_eq!(s["totals"]["failed"], 3);
    assert_eq!(worker_pids(&s).len(), 3, "one worker per failed item");
}

#[test]
fn a_worker_that_exits_cleanly_after_each_reply_is_recycled() {
    // Each worker answers one item, reads the next and exits 0 without answering it:
    // every item succeeds, each on its own worker; the item the worker left with goes to
    // the next one.
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 6]\n");
    script(
        &dir.path().join("worker"),
        "#!/bin/sh\necho '{\"ready\": true}' >&4\nread -r line <&3\nid=${line#*\\\"id\\\":}\nid=${id%%,*}\necho \"{\\\"id\\\": $id, \\\"ok\\\": $$}\" >&4\nread -r next <&3\nexit 0\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 6);
    let answered_by: BTreeSet<u64> = (1..=6)
        .map(|seq| task(&s, seq)["result"].as_u64().expect("a worker's pid"))
        .collect();
    assert_eq!(answered_by.len(), 6, "one worker per item");
    assert!(
        s["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .all(|w| !w["exit"]
                .as_str()
                .unwrap_or_default()
                .contains("without answering")),
        "{}",
        s["workers"]
    );
}

#[test]
fn an_item_on_which_every_worker_exits_cleanly_fails_once() {
    // Item 3 makes a worker exit 0: the worker that had answered items recycled itself,
    // the fresh one that exits on it as its first item fails it, and the rest run.
    let dir =
        task_dir("[pool]\nworkers = 1\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, 5]\n");
    script(
        &dir.path().join("worker"),
        "#!/bin/sh\necho '{\"ready\": true}' >&4\nwhile read -r line <&3; do\n  id=${line#*\\\"id\\\":}\n  id=${id%%,*}\n  [ \"$id\" = 3 ] && exit 0\n  echo \"{\\\"id\\\": $id, \\\"ok\\\": $id}\" >&4\ndone\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 4);
    let error = task(&s, 3)["error"].as_str().expect("error");
    assert!(
        error.contains("exited without answering the item (exit 0)"),
        "{error}"
    );
    assert_eq!(worker_pids(&s).len(), 3, "{}", s["workers"]);
}

#[test]
fn a_module_that_breaks_after_the_load_stops_the_starts() {
    // It loads for the check and for the first worker; its first item breaks it, so every
    // later worker fails to import it. One item per worker: each item needs a new worker.
    let dir = python_dir(
        "[pool]\nworkers = 1\nmax_tasks_per_worker = 1\n[worker]\npython = \"work.py:f\"\n[each]\nrange = [1, 200]\n",
        "import os\nwith open('imports', 'a') as log:\n    log.write(os.environ.get('POOLSCOPE_SLOT', 'check') + '\\n')\nif os.path.exists('broken'):\n    import no_such_module\ndef f(x):\n    open('broken', 'w').close()\n    return x\n",
    );
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let imports = fs::read_to_string(dir.path().join("imports")).expect("imports");
    assert_eq!(
        imports.lines().collect::<Vec<_>>(),
        ["check", "1", "1", "1"],
        "the load's check, the worker that broke it, and two that failed alike"
    );
    let s = summary(&out);
    assert_eq!(s["totals"]["ok"], 1);
    assert_eq!(s["totals"]["failed"], 199);
    for seq in [2, 3] {
        let t = task(&s, seq);
        assert_eq!(t["exit_code"], 1, "a worker failed to start for it");
    }
    for seq in 4..=200 {
        let t = task(&s, seq);
        assert_eq!(t["status"], "failed");
        assert_eq!(t["pid"], 0, "no worker ran it");
        let outcome = t["outcome"].as_str().expect("outcome");
        assert!(
            outcome.contains("2 workers in a row failed to start alike (exit 1: ModuleNotFoundError: No module named 'no_such_module')"),
            "{outcome}"
        );
        let tail = t["stderr_tail"].as_str().expect("stderr");
        assert!(tail.contains("Traceback (most recent call last)"), "{tail}");
        assert_eq!(
            tail.lines().last(),
            Some("ModuleNotFoundError: No module named 'no_such_module'")
        );
    }
    let rows = joblog(&out);
    assert_eq!(rows.len(), 200, "every item has its joblog line");
    assert!(rows.iter().skip(3).all(|r| r[6] == "127"), "not started");
}

/// A task directory of `items` items on `workers` slots of `./worker`, which appends its
/// PID to `starts`, writes `stderr` and exits with the code `exit` (a shell word) gives.
fn unstartable(workers: usize, items: usize, stderr: &str, exit: &str) -> tempfile::TempDir {
    let dir = task_dir(&format!(
        "[pool]\nworkers = {workers}\n[worker]\ncmd = [\"./worker\"]\n[each]\nrange = [1, {items}]\n"
    ));
    script(
        &dir.path().join("worker"),
        &format!("#!/bin/sh\necho $$ >> starts\necho '{stderr}' >&2\nexit {exit}\n"),
    );
    dir
}

fn starts(dir: &Path) -> usize {
    fs::read_to_string(dir.join("starts"))
        .expect("starts")
        .lines()
        .count()
}

#[test]
fn workers_that_fail_to_start_alike_twice_are_not_started_again() {
    // At most one failed start more than there are slots: the slots start together, and
    // none starts after the second failure.
    for workers in [1, 3] {
        let dir = unstartable(workers, 200, "no licence for this host", "3");
        let out = dir.path().join("run");
        let o = run_into(dir.path(), &out, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let started = starts(dir.path());
        assert!(
            (2..=workers + 1).contains(&started),
            "{workers} slots started {started} workers"
        );
        let s = summary(&out);
        assert_eq!(s["totals"]["failed"], 200);
        let refused: Vec<&Value> = s["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter(|t| t["pid"] == 0)
            .collect();
        assert!(refused.len() >= 200 - started, "{}", refused.len());
        for t in refused {
            let outcome = t["outcome"].as_str().expect("outcome");
            assert!(
                outcome.contains("failed to start alike (exit 3: no licence for this host)")
                    && outcome.contains("no worker starts again"),
                "{outcome}"
            );
            assert_eq!(t["stderr_tail"], "no licence for this host");
        }
        assert_eq!(joblog(&out).len(), 200);
        assert_eq!(results(&out).len(), 200);
    }
}

#[test]
fn workers_that_fail_to_start_differently_are_started_for_each_item() {
    // Exit codes 2, 1, 2, 1...: never the same failure twice in a row.
    let dir = unstartable(1, 6, "odd", "$(( $(wc -l < starts) % 2 + 1 ))");
    let out = dir.path().join("run");
    let o = run_into(dir.path(), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(starts(dir.path()), 6, "one worker per item");
    let s = summary(&out);
    for seq in 1..=6 {
        let t = task(&s, seq);
        assert_eq!(t["exit_code"], 1 + (seq as u64 % 2), "task {seq}");
        assert_ne!(t["pid"], 0);
    }
}
