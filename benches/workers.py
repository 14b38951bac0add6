#!/usr/bin/env python3
"""Persistent workers side by side: poolscope's worker pool against multiprocessing.

Cases (all in one run, or those named by --cases): throughput, startup, uneven.

Throughput: N no-op items (--items, default 200,000) through 2 workers
  ps-noop     poolscope run, `[worker] builtin = "noop"`
  ps-python   poolscope run, `[worker] python = "work.py:f"`, `def f(x): return x`
  Pool.map    multiprocessing Pool(2).map(f, items, chunksize=1), fork start method
  Pool.imap   Pool(2).imap_unordered(f, items, chunksize=1), consumed fully
  PPE.map     concurrent.futures.ProcessPoolExecutor(2): list(ex.map(f, items)),
              chunksize 1 (its default); fewer items (--ppe-items, default 50,000)
              because it is slow

Start-up: a pool of 8 workers ready for work
  ps-noop-8    poolscope, 8 noop workers, 8 items: max of summary.json's
               workers[*].ready_seconds (if the summary has them)
  ps-python-8  the same with 8 Python workers (`python = "work.py:f"`)
  Pool(8) fork / spawn   from just before Pool(8) to when 8 tasks have returned, each of
               which waits on an 8-party barrier, so all 8 workers have taken one

Uneven: `def f(x): time.sleep(x)` over the items 3, 0.1, 3, then 9 x 0.3 (seconds, in
that order) through 2 workers; the ideal wall time (each item, in listed order, on the
worker that is free first) is computed by the script: 4.500 s
  ps-python-uneven  poolscope run, `[worker] python = "work.py:f"`, `[each] inputs =
               ["3", "0.1", ...]` (each item a JSON string, so f sleeps float(x))
  Pool.map-uneven   Pool(2).map(f, items) with its default chunksize, fork start method

Items/s is items / whole-command wall time: time.perf_counter() around subprocess.run()
of the whole process (poolscope, or `python3 mp_workers.py ...`), so process start-up,
pool start-up, shutdown and (for poolscope) writing the run's records are included on
both sides. The Python script also reports the in-process time of just the map call.

Each contender runs R times (--runs, default 3) after one untimed warm-up run with a
tenth of the items (uneven: 2 items of 0.01 s); within a case the contenders are interleaved round-robin and the
starting one rotates each round. Every poolscope run is checked: exit status 0, all
items ok in summary.json, results.jsonl with exactly N lines, one per item, no errors
(and for the Python worker each result equal to its item, or null for the uneven case).
The Python runs check the count and the sum of their results (uneven: all None).

The poolscope binary comes from $POOLSCOPE, else <repo>/target/release/poolscope,
which is built with `cargo build --release` if it is missing.

Python 3 standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

# benchlib.py is next to this script: its folder first, from any cwd, even with python3 -P
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (UNEVEN, BenchError, announce, arg_parser, command_line,  # noqa: E402
                      fact_lines, find_poolscope, first_line, fmt, greedy_makespan, loadavg,
                      machine_facts, parse_args, ratio, rotated, uneven_inputs,
                      versions_lines, work_dir)
from benchlib import write_section as benchlib_write_section  # noqa: E402

WORKERS = 2
STARTUP_WORKERS = 8
TIMEOUT = 900  # seconds, per command: a hung run fails the benchmark instead of blocking

MP_SCRIPT = '''\
"""multiprocessing side of benches/workers.py: python3 mp_workers.py MODE WORKERS N.

Prints one JSON line. Modes: map, imap_unordered, ppe (throughput, fork start method),
startup-fork, startup-spawn (N tasks that each wait on an N-party barrier), uneven
(python3 mp_workers.py uneven WORKERS N S1 ... SN: Pool.map of time.sleep over the N
durations, default chunksize, fork start method).
"""
import json
import multiprocessing
import os
import sys
import time


def f(x):
    return x


def nap(x):
    time.sleep(x)


_barrier = None


def _init(barrier):
    global _barrier
    _barrier = barrier


def _hello(_):
    # Returns only once all parties have arrived, so N tasks need N distinct workers.
    _barrier.wait(120)
    return os.getpid()


def main():
    mode, workers, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = {"mode": mode, "workers": workers, "n": n}
    if mode in ("map", "imap_unordered"):
        ctx = multiprocessing.get_context("fork")
        t0 = time.perf_counter()
        with ctx.Pool(workers) as pool:
            t1 = time.perf_counter()
            if mode == "map":
                res = pool.map(f, range(1, n + 1), chunksize=1)
            else:
                res = list(pool.imap_unordered(f, range(1, n + 1), chunksize=1))
            t2 = time.perf_counter()
        out.update(pool_seconds=t1 - t0, call_seconds=t2 - t1, count=len(res), total=sum(res))
    elif mode == "uneven":
        items = [float(a) for a in sys.argv[4:]]
        if len(items) != n:
            sys.exit(f"{len(items)} durations given, expected {n}")
        ctx = multiprocessing.get_context("fork")
        t0 = time.perf_counter()
        with ctx.Pool(workers) as pool:
            t1 = time.perf_counter()
            res = pool.map(nap, items)
            t2 = time.perf_counter()
        out.update(pool_seconds=t1 - t0, call_seconds=t2 - t1, count=len(res),
                   total=sum(1 for r in res if r is None))
    elif mode == "ppe":
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context("fork")
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            t1 = time.perf_counter()
            res = list(ex.map(f, range(1, n + 1)))
            t2 = time.perf_counter()
        out.update(pool_seconds=t1 - t0, call_seconds=t2 - t1, count=len(res), total=sum(res))
    elif mode in ("startup-fork", "startup-spawn"):
        ctx = multiprocessing.get_context(mode.split("-", 1)[1])
        barrier = ctx.Barrier(workers)
        t0 = time.perf_counter()
        pool = ctx.Pool(workers, initializer=_init, initargs=(barrier,))
        t1 = time.perf_counter()
        pids = pool.map(_hello, range(workers), chunksize=1)
        t2 = time.perf_counter()
        pool.close()
        pool.join()
        out.update(pool_seconds=t1 - t0, ready_seconds=t2 - t0, distinct_pids=len(set(pids)))
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
'''

WORK_PY = "def f(x):\n    return x\n"
UNEVEN_WORK_PY = "import time\n\n\ndef f(x):\n    time.sleep(float(x))\n"


@dataclass
class Contender:
    key: str
    label: str
    kind: str  # "poolscope" or "python"
    worker: str = ""  # poolscope: 'builtin = "noop"' or 'python = "work.py:f"'
    mode: str = ""  # python: MP_SCRIPT mode
    uneven: bool = False  # items are durations to sleep, given as a list


THROUGHPUT = [
    Contender("ps-noop", 'poolscope, builtin = "noop"', "poolscope", worker='builtin = "noop"'),
    Contender("ps-python", 'poolscope, python = "work.py:f"', "poolscope",
              worker='python = "work.py:f"'),
    Contender("Pool.map", "Pool(2).map(f, items, chunksize=1), fork", "python", mode="map"),
    Contender("Pool.imap", "Pool(2).imap_unordered(f, items, chunksize=1), fork", "python",
              mode="imap_unordered"),
    Contender("PPE.map", "ProcessPoolExecutor(2): list(ex.map(f, items)), fork", "python",
              mode="ppe"),
]

STARTUP = [
    Contender("ps-noop-8", 'poolscope, 8 × builtin = "noop"', "poolscope",
              worker='builtin = "noop"'),
    Contender("ps-python-8", 'poolscope, 8 × python = "work.py:f"', "poolscope",
              worker='python = "work.py:f"'),
    Contender("Pool(8) fork", "multiprocessing Pool(8), fork", "python", mode="startup-fork"),
    Contender("Pool(8) spawn", "multiprocessing Pool(8), spawn", "python", mode="startup-spawn"),
]

UNEVEN_CASE = [
    Contender("ps-python-uneven", 'poolscope, python = "work.py:f", f sleeps float(x)',
              "poolscope", worker='python = "work.py:f"', uneven=True),
    Contender("Pool.map-uneven", "Pool(2).map(f, items), default chunksize, fork", "python",
              mode="uneven", uneven=True),
]

CASE_KEYS = ["throughput", "startup", "uneven"]


@dataclass
class Samples:
    walls: list[float] = field(default_factory=list)  # whole command, from outside
    inner: list[float] = field(default_factory=list)  # poolscope wall_seconds / map call
    ready: list[float] = field(default_factory=list)  # start-up: all workers ready
    ready_missing: str = ""  # why `ready` has no value, if it has none


class Bench:
    def __init__(self, poolscope: str, work: str):
        self.poolscope = poolscope
        self.work = work
        self.mp_script = os.path.join(work, "mp_workers.py")
        with open(self.mp_script, "w") as f:
            f.write(MP_SCRIPT)
        self.run_counter = 0
        self.failures: list[str] = []  # correctness failures, reported loudly at the end
        self.runs_checked = 0

    def task_dir(self, c: Contender, workers: int, n: int, items: list[str] | None) -> str:
        d = os.path.join(self.work, "tasks", f"{c.key}-w{workers}-n{n}".replace("(", "")
                         .replace(")", "").replace(" ", "-"))
        if not os.path.isdir(d):
            os.makedirs(d)
            each = (f"range = [1, {n}]" if items is None
                    else "inputs = [" + ", ".join(json.dumps(x) for x in items) + "]")
            with open(os.path.join(d, "poolscope.toml"), "w") as f:
                f.write(f"[pool]\nworkers = {workers}\n\n[worker]\n{c.worker}\n\n"
                        f"[each]\n{each}\n")
            if c.worker.startswith("python"):
                with open(os.path.join(d, "work.py"), "w") as f:
                    f.write(UNEVEN_WORK_PY if c.uneven else WORK_PY)
        return d

    def shell(self, c: Contender, workers: int, n: int, items: list[str] | None = None) -> str:
        """The command line timed, for the report."""
        if c.kind == "poolscope":
            each = (f"range = [1, {n}]" if items is None
                    else "inputs = [" + ", ".join(json.dumps(x) for x in items) + "]")
            work = ", work.py: def f(x): time.sleep(float(x))" if c.uneven else ""
            return (f"poolscope run $TMP/{c.key} --out $TMP/runs/NNNN "
                    f">$TMP/stdout.txt 2>/dev/null  # [pool] workers = {workers}, "
                    f"[worker] {c.worker}, [each] {each}{work}")
        return " ".join([f"python3 mp_workers.py {c.mode} {workers} {n}"] + (items or []))

    def run_once(self, c: Contender, workers: int, n: int, samples: Samples | None,
                 startup: bool = False, items: list[str] | None = None) -> float:
        """One timed run; `items`, if given (n of them), are the items instead of 1..n."""
        if c.kind == "poolscope":
            return self._run_poolscope(c, workers, n, samples, startup, items)
        return self._run_python(c, workers, n, samples, startup, items)

    def _fail(self, what: str) -> None:
        msg = f"CORRECTNESS FAILURE: {what}"
        self.failures.append(what)
        print("\n" + "!" * 78 + f"\n{msg}\n" + "!" * 78, file=sys.stderr, flush=True)

    def _run_poolscope(self, c: Contender, workers: int, n: int, samples: Samples | None,
                       startup: bool, items: list[str] | None) -> float:
        task = self.task_dir(c, workers, n, items)
        self.run_counter += 1
        out = os.path.join(self.work, "runs", f"{self.run_counter:04d}")
        stdout_path = os.path.join(self.work, "stdout.txt")
        # As a user runs it: the summary on stdout, a line per item on stderr (not a
        # terminal, so no progress bar). `--json` would print every item's entry too.
        argv = [self.poolscope, "run", task, "--out", out]
        # Untimed runs keep stderr, so a broken manifest or binary says why; timed runs
        # send the per-item progress lines to /dev/null.
        err_path = os.path.join(self.work, "stderr.txt")
        with open(stdout_path, "wb") as so, \
                (open(err_path, "wb") if samples is None else open(os.devnull, "wb")) as se:
            t0 = time.perf_counter()
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                   timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise BenchError(f"{c.key}: poolscope did not finish in {TIMEOUT} s: {argv}")
            wall = time.perf_counter() - t0
        try:
            if p.returncode != 0:
                err = ""
                if samples is None:
                    with open(err_path, "rb") as f:
                        err = f.read()[-2000:].decode(errors="replace")
                else:
                    err = "(stderr not kept in timed runs; the warm-up run keeps it)"
                raise BenchError(f"{c.key}: poolscope exited {p.returncode}: {argv}\n"
                                 f"stderr: {err}")
            if os.path.getsize(stdout_path) == 0:
                self._fail(f"{c.key}: `poolscope run` printed no summary on stdout")
            try:
                with open(os.path.join(out, "summary.json")) as f:
                    summary = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise BenchError(f"{c.key}: no readable summary.json in {out}: {e}")
            self._check_poolscope(c, n, out, summary)
            if samples is not None:
                samples.walls.append(wall)
                if c.uneven:
                    span = items_span(summary)
                    if span is None:
                        raise BenchError(f"{c.key}: summary.json lacks start_seconds or "
                                         f"wall_seconds of a task ({out})")
                    samples.inner.append(span)
                else:
                    samples.inner.append(float(summary["wall_seconds"]))
                if startup:
                    ready, why = workers_ready(summary, workers)
                    if ready is None:
                        samples.ready_missing = why
                    else:
                        samples.ready.append(ready)
        finally:
            shutil.rmtree(out, ignore_errors=True)
            try:
                os.unlink(stdout_path)
            except FileNotFoundError:
                pass
        return wall

    def _check_poolscope(self, c: Contender, n: int, out: str, summary: dict) -> None:
        self.runs_checked += 1
        t = summary.get("totals", {})
        if t.get("tasks") != n or t.get("ok") != n or t.get("failed") or t.get("timed_out"):
            self._fail(f"{c.key}: summary.json totals are not {n} ok: {t}")
        path = os.path.join(out, "results.jsonl")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self._fail(f"{c.key}: cannot read {path}: {e}")
            return
        lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        if lines != n:
            self._fail(f"{c.key}: results.jsonl has {lines} lines, expected {n}")
        seen = set()
        errors = bad = 0
        python = c.worker.startswith("python")
        # The Python worker's result of item `task`: its item (1..n), or None for f's sleep
        def expected(task):
            return None if c.uneven else task
        first_bad = ""
        for line in data.splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                first_bad = first_bad or line[:200].decode(errors="replace")
                continue
            seen.add(r.get("task"))
            if "error" in r or "ok" not in r:
                errors += 1
                first_bad = first_bad or line[:200].decode(errors="replace")
            elif python and r["ok"] != expected(r.get("task")):
                bad += 1
                first_bad = first_bad or line[:200].decode(errors="replace")
        if errors or bad or seen != set(range(1, n + 1)):
            missing = n - len(seen & set(range(1, n + 1)))
            self._fail(f"{c.key}: results.jsonl: {errors} error lines, {bad} wrong/unparsable "
                       f"lines, {missing} of {n} items missing; first bad line: {first_bad!r}")

    def _run_python(self, c: Contender, workers: int, n: int, samples: Samples | None,
                    startup: bool, items: list[str] | None) -> float:
        argv = [sys.executable, self.mp_script, c.mode, str(workers), str(n)] + (items or [])
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{c.key}: did not finish in {TIMEOUT} s: {argv}")
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise BenchError(f"{c.key}: exited {p.returncode}: {argv}\n"
                             f"stderr: {p.stderr.decode(errors='replace')[-2000:]}")
        try:
            r = json.loads(p.stdout.decode().strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError) as e:
            raise BenchError(f"{c.key}: no JSON line from {argv}: {e}")
        if startup:
            if r["distinct_pids"] != workers:
                self._fail(f"{c.key}: {r['distinct_pids']} distinct workers answered, "
                           f"expected {workers}")
        elif c.uneven:
            if r["count"] != n or r["total"] != n:
                self._fail(f"{c.key}: {r['count']} results, {r['total']} of them None, "
                           f"expected {n}, all None")
        elif r["count"] != n or r["total"] != n * (n + 1) // 2:
            self._fail(f"{c.key}: {r['count']} results summing to {r['total']}, expected "
                       f"{n} summing to {n * (n + 1) // 2}")
        if samples is not None:
            samples.walls.append(wall)
            if startup:
                samples.ready.append(float(r["ready_seconds"]))
            else:
                samples.inner.append(float(r["call_seconds"]))
        return wall


def workers_ready(summary: dict, expected: int) -> tuple[float | None, str]:
    """When the last of the run's workers was ready (seconds from the run's start)."""
    ws = summary.get("workers")
    if not ws:
        return None, "summary.json has no `workers` list"
    ready = [w.get("ready_seconds") for w in ws]
    got = [x for x in ready if x is not None]
    if len(got) < expected:
        return None, (f"summary.json: {len(got)} of {len(ws)} workers have a ready_seconds, "
                      f"expected {expected}")
    return max(got), ""


def items_span(summary: dict) -> float | None:
    """From the first item's start to the last item's end, from summary.json's per-task
    start_seconds and wall_seconds (worker start-up is not in it)."""
    spans = []
    for t in summary.get("tasks", []):
        start, wall = t.get("start_seconds"), t.get("wall_seconds")
        if start is None or wall is None:
            return None
        spans.append((float(start), float(start) + float(wall)))
    if not spans:
        return None
    return max(e for _, e in spans) - min(s for s, _ in spans)


def ms(x: float) -> str:
    return f"{1000 * x:.1f}"


def report(args, thr: dict, counts: dict, cmds: dict, start: dict, start_cmds: dict,
           unev: dict, unev_cmds: dict, facts: dict, versions: dict, command: str,
           failures: list[str], runs_checked: int) -> str:
    """The markdown report; a case that did not run (--cases) has empty dicts and no
    section."""
    L: list[str] = []
    L.append("# Persistent workers: poolscope against multiprocessing")
    L.append("")
    L += fact_lines(facts)
    L.append(f"- Runs per contender: {args.runs}, contenders interleaved round-robin (the "
             "starting one rotates each round), after one untimed warm-up run each with a "
             "tenth of the items")
    L.append(f"- Load average after the last run: `{facts['load_after']}` (on {facts['nproc']} "
             "cores; well above that means other work shared the machine)")
    L.append("- Wall time measured from outside: `time.perf_counter()` around "
             "`subprocess.run()` of the whole command, so process start-up, pool start-up, "
             "shutdown and (poolscope) writing the run's records are included on both sides")
    L.append("")
    L += versions_lines("Versions:", versions, command)
    L.append("Commands timed (`$TMP/KEY` holds a generated `poolscope.toml`, and for the "
             "Python worker `work.py` with `def f(x): return x` (uneven: `def f(x): "
             "time.sleep(float(x))`); each poolscope run gets a "
             "fresh `--out` directory; `mp_workers.py` is the `multiprocessing` script "
             "embedded in `benches/workers.py`, where `f` returns its argument (uneven: "
             "`time.sleep(x)` of the durations given as arguments)):")
    L.append("")
    for c in THROUGHPUT:
        if c.key in cmds:
            L.append(f"- {c.key}: `{cmds[c.key]}`")
    for c in STARTUP:
        if c.key in start_cmds:
            L.append(f"- {c.key}: `{start_cmds[c.key]}`")
    for c in UNEVEN_CASE:
        if c.key in unev_cmds:
            L.append(f"- {c.key}: `{unev_cmds[c.key]}`")
    L.append("")

    if thr:
        L += throughput_section(thr, counts)
    if start:
        L += startup_section(start)
    if unev:
        L += uneven_section(unev)

    L.append("## Targets")
    L.append("")
    pm = None
    if thr:
        pm = counts["Pool.map"] / statistics.median(thr["Pool.map"].walls)
        L.append("Judged on the medians above, items/s on the whole-command wall time for "
                 "both sides, no tolerance" + (" (uneven: at most 3 % above the ideal)"
                                               if unev else "")
                 + ". Pool.map's in-process rate (map call only) is "
                 f"{counts['Pool.map'] / statistics.median(thr['Pool.map'].inner):,.0f} "
                 "items/s.")
    else:
        L.append("Judged on the medians above" + (" (uneven: at most 3 % above the ideal)"
                                                  if unev else "") + ".")
    L.append("")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    if thr and pm is not None:
        for k, factor in (("ps-noop", 3), ("ps-python", 1)):
            rate = counts[k] / statistics.median(thr[k].walls)
            ok = rate >= factor * pm
            L.append(f"| {k} ≥ {factor}× Pool.map(chunksize=1), whole-command items/s | "
                     f"{rate:,.0f} vs {factor} × {pm:,.0f} items/s ({ratio(rate, pm)}) | "
                     f"{'PASS' if ok else 'FAIL'} |")
    if unev:
        ideal = greedy_makespan(UNEVEN, WORKERS)
        span = statistics.median(unev["ps-python-uneven"].inner)
        ok = span <= 1.03 * ideal
        L.append(f"| uneven: ps-python-uneven, first item's start to last item's end "
                 f"(median), within 3 % of the ideal schedule | {fmt(span)} s vs "
                 f"{fmt(ideal)} s ({ratio(span, ideal)}) | {'PASS' if ok else 'FAIL'} |")
    L.append(f"| correctness: every poolscope run all ok, results.jsonl with exactly one "
             f"line per item | {runs_checked} runs checked, {len(failures)} failures | "
             f"{'PASS' if not failures else 'FAIL'} |")
    L.append("")
    if failures:
        L.append("**CORRECTNESS FAILURES:**")
        L.append("")
        for f in failures:
            L.append(f"- {f}")
        L.append("")
    return "\n".join(L)


def throughput_section(thr: dict, counts: dict) -> list[str]:
    L: list[str] = []
    med = {k: statistics.median(s.walls) for k, s in thr.items()}
    rate = {k: counts[k] / med[k] for k in thr}
    L.append(f"## No-op items through {WORKERS} workers")
    L.append("")
    L.append("items/s = items / **whole-command** wall time (median run; best = fastest "
             "run). *Inside* is, for poolscope, the engine's own `wall_seconds` from "
             "`summary.json` (from the run's start to its end; not exec, loading the task "
             "directory, or writing `summary.json`, `trace.json` and the summary "
             "after the end); for Python, the time of "
             "just the map call (pool already started, shutdown not included).")
    L.append("")
    L.append("| contender | items | median s | min s | items/s (median) | items/s (best) "
             "| vs Pool.map | inside s (median) | items/s inside |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in THROUGHPUT:
        s = thr[c.key]
        n = counts[c.key]
        inner = statistics.median(s.inner)
        L.append(f"| {c.key}: {c.label} | {n:,} | {fmt(med[c.key])} | {fmt(min(s.walls))} | "
                 f"{rate[c.key]:,.0f} | {n / min(s.walls):,.0f} | "
                 f"{ratio(rate[c.key], rate['Pool.map'])} | {fmt(inner)} | {n / inner:,.0f} |")
    L.append("")
    gaps = []
    for k in ("ps-noop", "ps-python"):
        s = thr[k]
        g = statistics.median([o - i for o, i in zip(s.walls, s.inner)])
        gaps.append(f"{k} {fmt(g)} s")
    L.append("poolscope whole command − engine `wall_seconds` (median; exec, loading, writing "
             "records, exit): " + ", ".join(gaps) + ".")
    L.append("")
    L.append("All runs, whole command s: " + "; ".join(
        f"{c.key} " + " ".join(fmt(x) for x in thr[c.key].walls) for c in THROUGHPUT))
    L.append("")
    return L


def startup_section(start: dict) -> list[str]:
    L: list[str] = []
    L.append(f"## Start-up: a pool of {STARTUP_WORKERS} workers ready for work")
    L.append("")
    L.append(f"*Ready* for Python: from just before `Pool({STARTUP_WORKERS})` to the return "
             f"of `pool.map(hello, range({STARTUP_WORKERS}), chunksize=1)`, where each `hello` "
             f"waits on a {STARTUP_WORKERS}-party `Barrier` (handed to the workers by the "
             "pool's initializer) and returns its pid: it returns only once every worker "
             f"has started and taken one task ({STARTUP_WORKERS} distinct pids checked). "
             "Interpreter start-up and imports of the parent are not included. For "
             "poolscope: the largest `workers[*].ready_seconds` in `summary.json` (seconds "
             "from the run's start, when the worker said it was ready) of a run with "
             f"{STARTUP_WORKERS} workers and {STARTUP_WORKERS} noop items; exec of poolscope "
             "and loading the task directory are not included. *Whole command* is the "
             "outside wall time of the same process, pool shutdown included.")
    L.append("")
    L.append("| contender | ready ms (median) | min | max | whole command ms (median) |")
    L.append("|---|---:|---:|---:|---:|")
    for c in STARTUP:
        s = start[c.key]
        if s.ready:
            r = [ms(statistics.median(s.ready)), ms(min(s.ready)), ms(max(s.ready))]
        else:
            r = [f"n/a ({s.ready_missing})", "", ""]
        L.append(f"| {c.key}: {c.label} | " + " | ".join(r)
                 + f" | {ms(statistics.median(s.walls))} |")
    L.append("")
    return L


def uneven_section(unev: dict) -> list[str]:
    L: list[str] = []
    ideal = greedy_makespan(UNEVEN, WORKERS)
    L.append(f"## Uneven items through {WORKERS} workers")
    L.append("")
    L.append(f"{len(UNEVEN)} items, in this order: " + ", ".join(f"{x:g}" for x in UNEVEN)
             + " (seconds `f` sleeps). Ideal wall time: "
             f"{fmt(ideal)} s, the schedule where each item, in listed order, starts on the "
             "worker that is free first, as soon as it is free (computed by the script "
             "from the listed durations). *Whole command* is the outside wall time, "
             "process and pool start-up and shutdown included on both sides (for "
             "poolscope, starting the Python workers). *Inside* is, for poolscope, from "
             "the first item's start to the last item's end (`start_seconds` and "
             "`wall_seconds` of the items in `summary.json`, as the worker timed them: "
             "worker start-up not included); for Python, the time of just the map call "
             "(pool already started). Warm-up: one untimed run each of 2 items of 0.01 s.")
    L.append("")
    L.append("| contender | median s | min s | max s | median vs ideal | inside s (median) "
             "| inside vs ideal |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for c in UNEVEN_CASE:
        s = unev[c.key]
        med = statistics.median(s.walls)
        inner = statistics.median(s.inner)
        L.append(f"| {c.key}: {c.label} | {fmt(med)} | {fmt(min(s.walls))} | "
                 f"{fmt(max(s.walls))} | {ratio(med, ideal)} | {fmt(inner)} | "
                 f"{ratio(inner, ideal)} |")
    L.append("")
    L.append("All runs, whole command s: " + "; ".join(
        f"{c.key} " + " ".join(fmt(x) for x in unev[c.key].walls) for c in UNEVEN_CASE))
    L.append("")
    L.append("All runs, inside s: " + "; ".join(
        f"{c.key} " + " ".join(fmt(x) for x in unev[c.key].inner) for c in UNEVEN_CASE))
    L.append("")
    return L


BEGIN = "<!-- workers:begin -->"
END = "<!-- workers:end -->"


def write_section(path: str, text: str) -> None:
    """Replace this script's section of `path`."""
    benchlib_write_section(path, text, BEGIN, END)


def main() -> int:
    ap = arg_parser(__doc__, 3, "runs per contender (default 3)",
                    f"also write the markdown report into FILE, between {BEGIN} and {END} "
                    "(appended if missing)")
    ap.add_argument("--items", type=int, default=200_000,
                    help="no-op items per throughput run (default 200000)")
    ap.add_argument("--ppe-items", type=int, default=50_000,
                    help="items for ProcessPoolExecutor, which is slow (default 50000)")
    ap.add_argument("--cases", default=",".join(CASE_KEYS),
                    help="comma-separated subset of: " + ", ".join(CASE_KEYS))
    args = parse_args(ap)
    if args.items < 10 or args.ppe_items < 10:
        ap.error("--items and --ppe-items must be ≥ 10")
    wanted = {k.strip() for k in args.cases.split(",") if k.strip()}
    unknown = wanted - set(CASE_KEYS)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if not wanted:
        ap.error("--cases names no case")

    facts = machine_facts()
    try:
        poolscope = find_poolscope()
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    facts["binary"] = poolscope
    versions = {
        "poolscope": first_line([poolscope, "--version"]),
        "python3 (multiprocessing side)": first_line([sys.executable, "--version"])
        + f" ({sys.executable})",
    }
    path_py = shutil.which("python3")
    adapter_py = first_line([path_py, "--version"]) + f" ({path_py})" if path_py else "not found"
    versions["python3 on PATH (poolscope's Python adapter)"] = adapter_py
    command = command_line()
    announce(poolscope, versions, facts)

    counts = {c.key: (args.ppe_items if c.key == "PPE.map" else args.items) for c in THROUGHPUT}
    with work_dir("poolscope-workers-bench-", args.keep) as work:
        t_start = time.perf_counter()
        try:
            bench = Bench(poolscope, work)
            throughput = THROUGHPUT if "throughput" in wanted else []
            startup = STARTUP if "startup" in wanted else []
            uneven = UNEVEN_CASE if "uneven" in wanted else []
            items = uneven_inputs()
            cmds = {c.key: bench.shell(c, WORKERS, counts[c.key]) for c in throughput}
            start_cmds = {c.key: bench.shell(c, STARTUP_WORKERS, STARTUP_WORKERS)
                          for c in startup}
            unev_cmds = {c.key: bench.shell(c, WORKERS, len(items), items) for c in uneven}

            # Warm-up: one untimed run per contender (page cache, Python imports).
            for c in throughput:
                w = bench.run_once(c, WORKERS, max(10, counts[c.key] // 10), None)
                print(f"[warm-up] {c.key:13s} {w:7.3f} s", file=sys.stderr, flush=True)
            for c in startup:
                bench.run_once(c, STARTUP_WORKERS, STARTUP_WORKERS, None, startup=True)
            for c in uneven:
                w = bench.run_once(c, WORKERS, 2, None, items=["0.01", "0.01"])
                print(f"[warm-up] {c.key:13s} {w:7.3f} s", file=sys.stderr, flush=True)

            thr = {c.key: Samples() for c in throughput}
            for r in range(args.runs if throughput else 0):
                for c in rotated(THROUGHPUT, r):
                    w = bench.run_once(c, WORKERS, counts[c.key], thr[c.key])
                    n = counts[c.key]
                    print(f"[throughput run {r + 1}/{args.runs}] {c.key:13s} {w:7.3f} s "
                          f"{n / w:9,.0f} items/s", file=sys.stderr, flush=True)

            start = {c.key: Samples() for c in startup}
            for r in range(args.runs if startup else 0):
                for c in rotated(STARTUP, r):
                    s = start[c.key]
                    w = bench.run_once(c, STARTUP_WORKERS, STARTUP_WORKERS, s, startup=True)
                    rd = f"ready {ms(s.ready[-1])} ms" if len(s.ready) == r + 1 else \
                        f"ready n/a ({s.ready_missing})"
                    print(f"[start-up run {r + 1}/{args.runs}] {c.key:13s} {ms(w):>7} ms whole, "
                          f"{rd}", file=sys.stderr, flush=True)

            unev = {c.key: Samples() for c in uneven}
            for r in range(args.runs if uneven else 0):
                for c in rotated(UNEVEN_CASE, r):
                    s = unev[c.key]
                    w = bench.run_once(c, WORKERS, len(items), s, items=items)
                    print(f"[uneven run {r + 1}/{args.runs}] {c.key:16s} {w:7.3f} s whole, "
                          f"{s.inner[-1]:7.3f} s inside", file=sys.stderr, flush=True)
        except BenchError as e:
            print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
            return 1

    facts["load_after"] = loadavg()
    text = report(args, thr, counts, cmds, start, start_cmds, unev, unev_cmds, facts,
                  versions, command, bench.failures, bench.runs_checked)
    text += f"\nTotal benchmark time: {time.perf_counter() - t_start:.0f} s.\n"
    print(text)
    if bench.failures:
        print("\n" + "!" * 78, file=sys.stderr)
        print(f"CORRECTNESS FAILED in {len(bench.failures)} check(s):", file=sys.stderr)
        for f in bench.failures:
            print(f"  - {f}", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        if args.write:
            print(f"not writing {args.write}: fix the correctness failures first",
                  file=sys.stderr)
        return 1
    if args.write:
        write_section(args.write, text)
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
