#!/usr/bin/env bash
# Side-by-side benchmark of poolscope vs xargs -P, GNU parallel and multiprocessing.Pool.
# Installs what is missing, then runs benches/compare.py with the given arguments, e.g.
#   POOLSCOPE=path/to/poolscope bash benches/run.sh --runs 5 --write benches/RESULTS.md
# Without POOLSCOPE the binary is target/release/poolscope (built if missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v parallel >/dev/null 2>&1; then
    echo "installing GNU parallel" >&2
    if ! apt-get install -y parallel; then
        apt-get update
        apt-get install -y parallel
    fi
fi
command -v python3 >/dev/null 2>&1 || { echo "python3 is required" >&2; exit 2; }

export POOLSCOPE_BENCH_INVOCATION="bash benches/run.sh $*"
exec python3 "$here/compare.py" "$@"
