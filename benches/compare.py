#!/usr/bin/env python3
"""Side-by-side benchmark: poolscope vs xargs -P vs GNU parallel vs multiprocessing.Pool.

Cases (all in one run, or those named by --cases):
  sleep20   20 x `sleep 1` on 5 workers (ideal wall time: 4.000 s)
  uneven    `sleep S` for S in [3, 0.1, 3] + [0.3] * 9 seconds on 2 workers; the ideal
            wall time (list scheduling in listed order: each task on the slot free
            first) is computed by the script: 4.500 s
  true-p2   2000 x `true` on 2 workers
  true-p8   2000 x `true` on 8 workers

Each tool runs R times per case (--runs, default 5). Within a case the tools are
interleaved round-robin, and the starting tool rotates from one round to the next,
so slow phases of a noisy machine are spread over all tools. Wall time is measured
from outside: time.perf_counter() around subprocess.run() of the whole command, so
process startup is included.

The poolscope binary comes from $POOLSCOPE, else <repo>/target/release/poolscope,
which is built with `cargo build --release` if it is missing.

Python 3 standard library only.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

# benchlib.py is next to this script: its folder first, from any cwd, even with python3 -P
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (UNEVEN, BenchError, announce, arg_parser, command_line,  # noqa: E402
                      fact_lines, find_poolscope, first_line, fmt, greedy_makespan,
                      machine_facts, parse_args, ratio, rewrite_file, rotated,
                      uneven_inputs, versions_lines, work_dir)

POOL_SCRIPT = '''\
import multiprocessing
import subprocess
import sys


def run(argv):
    return subprocess.run(argv).returncode


if __name__ == "__main__":
    # pool_bench.py WORKERS COUNT CMD...: CMD, COUNT times
    # pool_bench.py WORKERS each CMD... ::: INPUT...: CMD INPUT, for each INPUT in turn
    workers = int(sys.argv[1])
    if sys.argv[2] == "each":
        rest = sys.argv[3:]
        at = rest.index(":::")
        argvs = [rest[:at] + [x] for x in rest[at + 1:]]
    else:
        argvs = [sys.argv[3:]] * int(sys.argv[2])
    count = len(argvs)
    with multiprocessing.Pool(workers) as pool:
        codes = pool.map(run, argvs)
    bad = sum(1 for c in codes if c != 0)
    if bad:
        print(f"{bad} of {count} commands failed", file=sys.stderr)
        sys.exit(1)
'''


@dataclass(eq=False)
class Case:
    key: str
    title: str
    count: int
    workers: int
    cmd: list[str]
    throughput: bool
    ideal: float | None = None
    # One task per input, the input appended to `cmd`; None: `cmd` as it is, `count` times
    inputs: list[str] | None = None


CASES = [
    Case("sleep20", "20 × `sleep 1`, 5 workers", 20, 5, ["sleep", "1"], False, 4.0),
    Case("uneven", "Uneven `sleep`s: 3, 0.1, 3, then 9 × 0.3 s, 2 workers", len(UNEVEN), 2,
         ["sleep"], False, greedy_makespan(UNEVEN, 2), uneven_inputs()),
    Case("true-p2", "2,000 × `true`, 2 workers", 2000, 2, ["true"], True),
    Case("true-p8", "2,000 × `true`, 8 workers", 2000, 8, ["true"], True),
]

TOOLS = ["poolscope", "xargs", "parallel", "mp.Pool"]


@dataclass
class Invocation:
    argv: list[str]
    stdin: bytes | None
    shell: str  # the equivalent shell command line, for the report


@dataclass
class Samples:
    walls: list[float] = field(default_factory=list)
    # poolscope only: from its JSON summary
    inner_walls: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def seq_bytes(n: int) -> bytes:
    return "".join(f"{i}\n" for i in range(1, n + 1)).encode()


class Bench:
    def __init__(self, poolscope: str, parallel: str, work: str):
        self.poolscope = poolscope
        self.parallel = parallel
        self.work = work
        self.pool_script = os.path.join(work, "pool_bench.py")
        with open(self.pool_script, "w") as f:
            f.write(POOL_SCRIPT)
        self.run_counter = 0

    def task_dir(self, case: Case) -> str:
        d = os.path.join(self.work, "tasks", case.key)
        if not os.path.isdir(d):
            os.makedirs(d)
            with open(os.path.join(d, "poolscope.toml"), "w") as f:
                if case.inputs is None:
                    cmd = ", ".join(json.dumps(a) for a in case.cmd)
                    f.write(f"[each]\nrange = [1, {case.count}]\ncmd = [{cmd}]\n")
                else:
                    inputs = ", ".join(json.dumps(x) for x in case.inputs)
                    cmd = ", ".join(json.dumps(a) for a in case.cmd + ["{}"])
                    f.write(f"[each]\ninputs = [{inputs}]\ncmd = [{cmd}]\n")
        return d

    def invocation(self, tool: str, case: Case) -> Invocation:
        n, w, cmd = case.count, case.workers, case.cmd
        qcmd = " ".join(shlex.quote(a) for a in cmd)
        if tool == "poolscope":
            self.run_counter += 1
            out = os.path.join(self.work, "runs", f"{case.key}-{self.run_counter:04d}")
            argv = [self.poolscope, "run", self.task_dir(case), "--workers", str(w),
                    "--out", out, "--json"]
            return Invocation(argv, None, " ".join(
                ["poolscope", "run", f"$TMP/tasks/{case.key}", "--workers", str(w),
                 "--out", f"$TMP/runs/{case.key}-NNNN", "--json"]))
        if case.inputs is not None:
            return self.each_invocation(tool, case)
        if tool == "xargs":
            if case.throughput:
                argv = ["xargs", f"-P{w}", "-n1"] + cmd
            else:
                argv = ["xargs", f"-P{w}", "-I{}"] + cmd
            flags = f"-P{w} -n1" if case.throughput else f"-P{w} -I{{}}"
            return Invocation(argv, seq_bytes(n), f"seq {n} | xargs {flags} {qcmd}")
        if tool == "parallel":
            argv = [self.parallel, "--will-cite", f"-j{w}", "-N0"] + cmd
            return Invocation(argv, seq_bytes(n),
                              f"seq {n} | parallel --will-cite -j{w} -N0 {qcmd}")
        if tool == "mp.Pool":
            argv = [sys.executable, self.pool_script, str(w), str(n)] + cmd
            return Invocation(argv, None,
                              f"python3 pool_bench.py {w} {n} {qcmd}"
                              f"  # Pool({w}).map(subprocess.run of [{', '.join(repr(a) for a in cmd)}])")
        raise ValueError(tool)

    def each_invocation(self, tool: str, case: Case) -> Invocation:
        """One task per input of `case`, the input appended to its command."""
        w, cmd, inputs = case.workers, case.cmd, case.inputs or []
        qcmd = " ".join(shlex.quote(a) for a in cmd)
        qinputs = " ".join(shlex.quote(x) for x in inputs)
        if tool == "xargs":
            argv = ["xargs", f"-P{w}", "-n1"] + cmd
            stdin = "".join(f"{x}\n" for x in inputs).encode()
            return Invocation(argv, stdin, f"printf '%s\\n' {qinputs} | xargs -P{w} -n1 {qcmd}")
        if tool == "parallel":
            argv = [self.parallel, "--will-cite", f"-j{w}"] + cmd + [":::"] + inputs
            return Invocation(argv, b"",
                              f"parallel --will-cite -j{w} {qcmd} ::: {qinputs}")
        if tool == "mp.Pool":
            argv = [sys.executable, self.pool_script, str(w), "each"] + cmd + [":::"] + inputs
            return Invocation(argv, None,
                              f"python3 pool_bench.py {w} each {qcmd} ::: {qinputs}"
                              f"  # Pool({w}).map(subprocess.run of [{', '.join(repr(a) for a in cmd)}, x])")
        raise ValueError(tool)

    def run_once(self, tool: str, case: Case, samples: Samples | None) -> float:
        inv = self.invocation(tool, case)
        t0 = time.perf_counter()
        p = subprocess.run(inv.argv, input=inv.stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise BenchError(
                f"{tool} failed in case {case.key} (exit {p.returncode}): {inv.argv}\n"
                f"stderr: {p.stderr.decode(errors='replace')[-2000:]}")
        if tool == "poolscope":
            try:
                summary = json.loads(p.stdout)
            except json.JSONDecodeError as e:
                raise BenchError(f"poolscope printed no valid JSON in case {case.key}: {e}")
            t = summary.get("totals", {})
            if (t.get("tasks") != case.count or t.get("ok") != case.count
                    or t.get("failed") or t.get("timed_out")):
                raise BenchError(f"poolscope run not all ok in case {case.key}: totals={t}")
            if samples is not None:
                samples.inner_walls.append(float(summary["wall_seconds"]))
                samples.cpu.append(float(summary["poolscope_cpu_seconds"]))
        if samples is not None:
            samples.walls.append(wall)
        return wall


def report(args, results, facts, versions, command) -> str:
    L: list[str] = []
    L.append("# poolscope side-by-side benchmark")
    L.append("")
    L += fact_lines(facts)
    L.append(f"- Runs per tool per case: {args.runs}, tools interleaved round-robin "
             "(the starting tool rotates each round); one untimed warm-up per tool first")
    L.append("- Wall time measured from outside: `time.perf_counter()` around "
             "`subprocess.run()` of the whole command (process startup included)")
    L.append("")
    L += versions_lines("Tool versions:", versions, command)
    L.append("Commands timed (`seq N` is fed to stdin by the script; `$TMP/tasks/CASE` "
             "holds a generated `poolscope.toml`: `[each]` with `range = [1, N]` and "
             "`cmd = [...]` (uneven: `inputs = [\"3\", \"0.1\", ...]` and "
             "`cmd = [\"sleep\", \"{}\"]`); each poolscope run gets a fresh `--out` directory; "
             "`pool_bench.py` is the small `multiprocessing.Pool` script embedded in "
             "`benches/compare.py`):")
    L.append("")
    for case in results:
        for tool in TOOLS:
            L.append(f"- {case.key} / {tool}: `{results[case]['cmds'][tool]}`")
    L.append("")

    for case, res in results.items():
        s: dict[str, Samples] = res["samples"]
        med = {t: statistics.median(s[t].walls) for t in TOOLS}
        L.append(f"## {case.title}")
        L.append("")
        if case.ideal is not None and case.inputs is not None:
            L.append(f"Ideal wall time: {case.ideal:.3f} s, the schedule where each task, in "
                     "listed order, starts on the slot that is free first, as soon as it is "
                     "free (computed by the script from the listed durations). Medians vs "
                     "the ideal: " + ", ".join(f"{t} {ratio(med[t], case.ideal)}"
                                               for t in TOOLS) + ".")
            L.append("")
        elif case.ideal is not None:
            L.append(f"Ideal wall time: {case.ideal:.3f} s.")
            L.append("")
        if case.throughput:
            L.append("| tool | median s | min s | max s | tasks/s (median) | tasks/s vs xargs |")
            L.append("|---|---:|---:|---:|---:|---:|")
        else:
            L.append("| tool | median s | min s | max s | median vs xargs |")
            L.append("|---|---:|---:|---:|---:|")
        for t in TOOLS:
            w = s[t].walls
            row = [t, fmt(med[t]), fmt(min(w)), fmt(max(w))]
            if case.throughput:
                tp = case.count / med[t]
                row += [f"{tp:,.0f}", ratio(med["xargs"], med[t])]
            else:
                row += [ratio(med[t], med["xargs"])]
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        if case.throughput:
            L.append(f"poolscope throughput: {ratio(med['xargs'], med['poolscope'])} xargs, "
                     f"{ratio(med['parallel'], med['poolscope'])} parallel, "
                     f"{ratio(med['mp.Pool'], med['poolscope'])} mp.Pool.")
        else:
            L.append(f"poolscope wall time: {ratio(med['poolscope'], med['xargs'])} xargs, "
                     f"{ratio(med['poolscope'], med['parallel'])} parallel, "
                     f"{ratio(med['poolscope'], med['mp.Pool'])} mp.Pool "
                     "(below 1× = faster).")
        L.append("")
        L.append("All runs, s: " + "; ".join(
            f"{t} " + " ".join(fmt(x) for x in s[t].walls) for t in TOOLS))
        L.append("")

    L.append("## poolscope's own CPU time")
    L.append("")
    L.append("`poolscope_cpu_seconds` (user+sys of the poolscope process, tasks not "
             "included) divided by its own `wall_seconds`, from its JSON summary; "
             "median of the per-run fractions. 100% = one core busy all the time.")
    L.append("")
    L.append("| case | CPU s (median) | poolscope wall s (median) | CPU / wall median | min | max | outside wall − poolscope wall (median, startup+exit) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    cpu_frac = {}
    for case, res in results.items():
        p: Samples = res["samples"]["poolscope"]
        fr = [c / w for c, w in zip(p.cpu, p.inner_walls)]
        cpu_frac[case.key] = statistics.median(fr)
        gap = statistics.median([o - i for o, i in zip(p.walls, p.inner_walls)])
        L.append(f"| {case.key} | {statistics.median(p.cpu):.4f} | "
                 f"{statistics.median(p.inner_walls):.3f} | {100 * cpu_frac[case.key]:.2f}% | "
                 f"{100 * min(fr):.2f}% | {100 * max(fr):.2f}% | {1000 * gap:.1f} ms |")
    L.append("")

    L.append("## Targets")
    L.append("")
    L.append("Judged on the medians above, no other tolerance than written (sleep20: below "
             "a millisecond is noise here, so within 1 % of xargs; uneven: at most 3 % above "
             "the ideal schedule).")
    L.append("")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    for case, res in results.items():
        s = res["samples"]
        med = {t: statistics.median(s[t].walls) for t in TOOLS}
        if case.key == "sleep20":
            ok = med["poolscope"] <= 1.01 * med["xargs"]
            L.append(f"| sleep20: poolscope median within 1 % of xargs median | "
                     f"{fmt(med['poolscope'])} s vs {fmt(med['xargs'])} s "
                     f"({ratio(med['poolscope'], med['xargs'])}) | "
                     f"{'PASS' if ok else 'FAIL'} |")
        elif case.key == "uneven" and case.ideal is not None:
            ok = med["poolscope"] <= 1.03 * case.ideal
            L.append(f"| uneven: poolscope median within 3 % of the ideal schedule | "
                     f"{fmt(med['poolscope'])} s vs {fmt(case.ideal)} s "
                     f"({ratio(med['poolscope'], case.ideal)}) | "
                     f"{'PASS' if ok else 'FAIL'} |")
            for peer in ("parallel", "mp.Pool"):
                ok = med["poolscope"] <= med[peer]
                L.append(f"| uneven: poolscope median ≤ {peer} median | "
                         f"{fmt(med['poolscope'])} s vs {fmt(med[peer])} s | "
                         f"{'PASS' if ok else 'FAIL'} |")
        else:
            tp = {t: case.count / med[t] for t in TOOLS}
            ok1 = tp["poolscope"] >= tp["xargs"]
            ok2 = tp["poolscope"] >= 5 * tp["parallel"]
            L.append(f"| {case.key}: poolscope throughput ≥ xargs | "
                     f"{tp['poolscope']:,.0f} vs {tp['xargs']:,.0f} tasks/s "
                     f"({ratio(tp['poolscope'], tp['xargs'])}) | {'PASS' if ok1 else 'FAIL'} |")
            L.append(f"| {case.key}: poolscope throughput ≥ 5× parallel | "
                     f"{tp['poolscope']:,.0f} vs 5 × {tp['parallel']:,.0f} tasks/s "
                     f"({ratio(tp['poolscope'], tp['parallel'])}) | {'PASS' if ok2 else 'FAIL'} |")
    if "sleep20" in cpu_frac:
        ok = cpu_frac["sleep20"] < 0.02
        L.append(f"| sleep20: poolscope self CPU < 2% of one core | "
                 f"{100 * cpu_frac['sleep20']:.2f}% | {'PASS' if ok else 'FAIL'} |")
    L.append("")
    return "\n".join(L)


BEGIN = "<!-- begin: written by benches/compare.py -->"
END = "<!-- end: written by benches/compare.py -->"


def write_section(path: str, text: str) -> None:
    """Replace this script's section of `path`, keeping what other benchmarks wrote."""
    section = f"{BEGIN}\n{text.rstrip()}\n{END}\n"

    def splice(old: str) -> str:
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            return head + section + ("\n" + tail if tail else "")
        return section + ("\n" + old if old else "")

    rewrite_file(path, splice)


def main() -> int:
    ap = arg_parser(__doc__, 5, "runs per tool per case (default 5)",
                    "also write the markdown report to FILE")
    ap.add_argument("--cases", default=",".join(c.key for c in CASES),
                    help="comma-separated subset of: " + ", ".join(c.key for c in CASES))
    args = parse_args(ap)
    wanted = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = set(wanted) - {c.key for c in CASES}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if c.key in wanted]

    facts = machine_facts()
    try:
        poolscope = find_poolscope()
        parallel = shutil.which("parallel")
        if not parallel:
            raise BenchError("GNU parallel not found (benches/run.sh installs it)")
        if not shutil.which("xargs"):
            raise BenchError("xargs not found")
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    facts["binary"] = poolscope
    versions = {
        "poolscope": first_line([poolscope, "--version"]),
        "xargs": first_line(["xargs", "--version"]),
        "parallel": first_line([parallel, "--will-cite", "--version"]),
        "python3": first_line([sys.executable, "--version"]),
    }
    command = command_line()
    announce(poolscope, versions, facts)

    with work_dir("poolscope-bench-", args.keep) as work:
        t_start = time.perf_counter()
        try:
            bench = Bench(poolscope, parallel, work)
            # Warm-up: one tiny untimed run per tool (page cache, Python imports).
            warm = Case("warmup", "warm-up", 4, 2, ["true"], True)
            for tool in TOOLS:
                bench.run_once(tool, warm, None)

            results: dict[Case, dict] = {}
            for case in cases:
                samples = {t: Samples() for t in TOOLS}
                cmds = {t: bench.invocation(t, case).shell for t in TOOLS}
                for r in range(args.runs):
                    for tool in rotated(TOOLS, r):
                        w = bench.run_once(tool, case, samples[tool])
                        print(f"[{case.key} run {r + 1}/{args.runs}] {tool:9s} {w:7.3f} s",
                              file=sys.stderr, flush=True)
                results[case] = {"samples": samples, "cmds": cmds}
        except BenchError as e:
            print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
            return 1

    text = report(args, results, facts, versions, command)
    text += f"\nTotal benchmark time: {time.perf_counter() - t_start:.0f} s.\n"
    print(text)
    if args.write:
        write_section(args.write, text)
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
