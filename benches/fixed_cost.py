#!/usr/bin/env python3
"""Where poolscope's fixed cost lies against xargs, measured from outside.

Two measurements, each interleaving poolscope and xargs run by run:

1. One task that prints the wall clock (`date +%s%N`): from the harness starting the tool
   to the task's clock reading ("to the task"), and from it to the tool's exit ("after").
2. 20 x `sleep 0.05` on 5 workers, the sleep20 benchmark shrunk twenty-fold, so that many
   runs fit in a minute: the whole run's wall time.

Usage: python3 benches/fixed_cost.py --poolscope target/release/poolscope --runs 100
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def one_task(poolscope, runs, scratch):
    tasks = os.path.join(scratch, "one")
    os.makedirs(tasks)
    with open(os.path.join(tasks, "poolscope.toml"), "w") as f:
        f.write('[[task]]\ncmd = ["date", "+%s%N"]\n')
    times = {"poolscope": ([], []), "xargs": ([], [])}
    for i in range(runs):
        for tool in ("poolscope", "xargs") if i % 2 == 0 else ("xargs", "poolscope"):
            out = os.path.join(scratch, f"one-{i}")
            if tool == "poolscope":
                argv, data = [poolscope, "run", tasks, "--out", out], None
            else:
                argv, data = ["xargs", "-P1", "-I{}", "date", "+%s%N"], b"1\n"
            t0 = time.time_ns()
            p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            t1 = time.time_ns()
            if tool == "poolscope":
                with open(os.path.join(out, "outputs", "1.out")) as f:
                    task = int(f.read())
            else:
                task = int(p.stdout)
            times[tool][0].append((task - t0) / 1e6)
            times[tool][1].append((t1 - task) / 1e6)
    return {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in times.items()}


def small_sleep20(poolscope, runs, scratch):
    tasks = os.path.join(scratch, "sleep20-small")
    os.makedirs(tasks)
    with open(os.path.join(tasks, "poolscope.toml"), "w") as f:
        f.write('[pool]\nworkers = 5\n[each]\nrange = [1, 20]\ncmd = ["sleep", "0.05"]\n')
    items = "".join(f"{i}\n" for i in range(1, 21)).encode()
    walls = {"poolscope": [], "xargs": []}
    for i in range(runs):
        for tool in ("poolscope", "xargs") if i % 2 == 0 else ("xargs", "poolscope"):
            if tool == "poolscope":
                argv = [poolscope, "run", tasks, "--out", os.path.join(scratch, f"s-{i}")]
                data = None
            else:
                argv, data = ["xargs", "-P5", "-I{}", "sleep", "0.05"], items
            t0 = time.perf_counter()
            subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            walls[tool].append((time.perf_counter() - t0) * 1e3)
    return {k: (statistics.median(v), min(v), max(v)) for k, v in walls.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poolscope", default="target/release/poolscope")
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    poolscope = os.path.abspath(args.poolscope)
    scratch = tempfile.mkdtemp(prefix="poolscope-fixed-cost-")
    try:
        one = one_task(poolscope, args.runs, scratch)
        small = small_sleep20(poolscope, args.runs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"`python3 benches/fixed_cost.py --runs {args.runs}`, medians of {args.runs} "
          "interleaved runs each:\n")
    print("| tool | one task: start to task | task to exit | 20 x sleep 0.05 on 5 workers "
          "(median, min, max) |")
    print("|---|---:|---:|---:|")
    for tool in ("poolscope", "xargs"):
        a, b = one[tool]
        m, lo, hi = small[tool]
        print(f"| {tool} | {a:.2f} ms | {b:.2f} ms | {m:.2f} ms ({lo:.2f}, {hi:.2f}) |")


if __name__ == "__main__":
    main()
