"""What benches/compare.py and benches/workers.py share.

- REPO, the repository root, and BenchError, a benchmark that cannot go on
- finding the poolscope binary: $POOLSCOPE, else <repo>/target/release/poolscope, built
  with `cargo build --release` if missing (find_poolscope)
- facts about the machine and the checkout (machine_facts, and the pieces it uses:
  first_line of a command's output, cpu_model, loadavg, git_rev)
- the command line that produced a report (command_line) and the lines that open a
  report: date, machine, HEAD, versions, command (fact_lines, versions_lines), and
  what is printed on stderr before the runs (announce)
- the shared command-line options --runs, --write and --keep (arg_parser, parse_args)
- the temporary work directory, removed at the end unless --keep (work_dir)
- the round-robin order of a round (rotated), number formats (fmt, ratio)
- the uneven sleep list both scripts time, and the ideal schedule of a list of task
  durations on a pool (UNEVEN, greedy_makespan)
- rewriting a results file in place (rewrite_file), or the section of it between two
  markers (write_section)

Not run on its own: the scripts import it from their own folder. Python 3 standard
library only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Iterator, Sequence, TypeVar

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

T = TypeVar("T")


class BenchError(RuntimeError):
    pass


def first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=30)
        out = p.stdout.decode(errors="replace").strip().splitlines()
        return out[0].strip() if out else "?"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def find_poolscope() -> str:
    env = os.environ.get("POOLSCOPE")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise BenchError(f"POOLSCOPE={env} is not an executable file")
        return os.path.abspath(env)
    default = os.path.join(REPO, "target", "release", "poolscope")
    if not os.path.isfile(default):
        print(f"{default} missing: running cargo build --release", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if not os.path.isfile(default):
        raise BenchError(f"{default} still missing after cargo build --release")
    return default


def git_rev() -> str:
    """The repository's HEAD commit at benchmark time (the binary may differ if $POOLSCOPE
    points elsewhere)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return "?"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_facts() -> dict:
    """Date, nproc, CPU, kernel, load average and HEAD, taken before the runs."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": first_line(["nproc"]),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "load": loadavg(),
        "rev": git_rev(),
    }


def command_line() -> str:
    """How this benchmark was started, as the report shows it: the wrapper script's
    command ($POOLSCOPE_BENCH_INVOCATION) or python3 with sys.argv, after POOLSCOPE=... if
    that is set."""
    invoked = os.environ.get("POOLSCOPE_BENCH_INVOCATION") or " ".join(
        shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1]] + sys.argv)
    env_part = (f"POOLSCOPE={shlex.quote(os.environ['POOLSCOPE'])} "
                if os.environ.get("POOLSCOPE") else "")
    return env_part + invoked


def announce(poolscope: str, versions: dict, facts: dict) -> None:
    """What is printed on stderr before the runs."""
    print(f"poolscope: {poolscope}", file=sys.stderr)
    for k, v in versions.items():
        print(f"{k}: {v}", file=sys.stderr)
    print(f"load average before start: {facts['load']}", file=sys.stderr)


def fact_lines(facts: dict) -> list[str]:
    """The report's date, machine and HEAD lines (facts from machine_facts plus "binary")."""
    return [
        f"- Date (UTC): {facts['date']}",
        f"- Machine: nproc {facts['nproc']}, CPU `{facts['cpu']}`, "
        f"kernel `{facts['kernel']}`, load average before start `{facts['load']}`",
        f"- Repository HEAD at run time: `{facts['rev']}`; poolscope binary: "
        f"`{facts['binary']}`",
    ]


def versions_lines(heading: str, versions: dict, command: str) -> list[str]:
    """The report's list of versions under `heading`, then the command that produced it."""
    L = [heading, ""]
    for k, v in versions.items():
        L.append(f"- {k}: `{v}`")
    L += ["", "Produced by:", "", "```", command, "```", ""]
    return L


def arg_parser(doc: str | None, runs_default: int, runs_help: str,
               write_help: str) -> argparse.ArgumentParser:
    """A parser with the script's docstring as description, --runs and --write; the script
    adds its own options, then calls parse_args."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=runs_default, help=runs_help)
    ap.add_argument("--write", metavar="FILE", help=write_help)
    return ap


def parse_args(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """Adds --keep (last), parses the command line and checks --runs."""
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be ≥ 1")
    return args


@contextlib.contextmanager
def work_dir(prefix: str, keep: bool) -> Iterator[str]:
    """A fresh temporary directory, removed at the end (said on stderr instead if keep)."""
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        yield work
    finally:
        if keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def rotated(items: Sequence[T], r: int) -> list[T]:
    """Round r's order: the starting item rotates from one round to the next."""
    k = r % len(items)
    return list(items[k:]) + list(items[:k])


def rewrite_file(path: str, edit: Callable[[str], str]) -> None:
    """Replace the text of `path` (empty if it does not exist) with edit(text)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    new = edit(old)
    with open(path, "w") as f:
        f.write(new)


def write_section(path: str, text: str, begin: str, end: str) -> None:
    """Replace the section of `path` between the markers `begin` and `end` with `text`
    (appended at the end if missing), keeping everything else byte for byte."""
    section = f"{begin}\n{text.rstrip()}\n{end}"

    def splice(old: str) -> str:
        b = old.find(begin)
        e = old.find(end, b + len(begin)) if b >= 0 else -1
        if b >= 0 and e >= 0:
            return old[:b] + section + old[e + len(end):]
        if old.strip():
            return old.rstrip("\n") + "\n\n" + section + "\n"
        return section + "\n"

    rewrite_file(path, splice)


# Seconds of `sleep`, in the order listed: two long tasks with a short one between them,
# then many short ones. A pool that binds a task to a slot before that slot is free makes
# the short ones wait behind a long one while the other slot idles.
UNEVEN = [3.0, 0.1, 3.0] + [0.3] * 9


def uneven_inputs() -> list[str]:
    """UNEVEN as command-line arguments: "3", "0.1", "3", "0.3", ..."""
    return [f"{x:g}" for x in UNEVEN]


def greedy_makespan(durations: Sequence[float], workers: int) -> float:
    """The wall time of list scheduling in listed order: each task, in turn, starts on the
    slot that is free first, as soon as it is free (ties: the lowest slot). No start-up or
    hand-over costs: the ideal a pool that starts tasks in order can reach."""
    free = [0.0] * max(1, workers)
    for d in durations:
        i = min(range(len(free)), key=lambda k: free[k])
        free[i] += d
    return max(free)


def fmt(x: float) -> str:
    return f"{x:.3f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "n/a"
