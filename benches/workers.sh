#!/usr/bin/env bash
# Persistent workers side by side: poolscope's worker pool against multiprocessing.Pool and
# ProcessPoolExecutor (no-op items through 2 workers; start-up of 8 workers; uneven sleeps
# through 2 workers). `--cases uneven` (or throughput, startup) runs only those cases.
# Runs benches/workers.py with the given arguments, e.g.
#   POOLSCOPE=path/to/poolscope bash benches/workers.sh --runs 3 --write benches/RESULTS.md
# Without POOLSCOPE the binary is target/release/poolscope, (re)built first with
# `cargo build --release`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

command -v python3 >/dev/null 2>&1 || { echo "python3 is required" >&2; exit 2; }
if [ -z "${POOLSCOPE:-}" ]; then
    echo "building target/release/poolscope (cargo build --release)" >&2
    (cd "$here/.." && cargo build --release)
fi

export POOLSCOPE_BENCH_INVOCATION="bash benches/workers.sh $*"
exec python3 "$here/workers.py" "$@"
