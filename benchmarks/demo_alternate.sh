#!/usr/bin/env bash
# The demo's pipeline time (Snakemake's whole run, timed by the shell) of two commits, alternately, each from a fresh
# clone in a scratch folder with one shared venv and the clone's own b2m first on PYTHONPATH (issue 37's runs):
#
#     benchmarks/demo_alternate.sh BASELINE_REV REV [REPEATS] [SCRATCH]
#
# Prints one line per run (tag, commit, seconds) and each run's per-rule table (benchmarks/demo_rules.py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
baseline=$1; rev=$2; repeats=${3:-3}; scratch=${4:-$(mktemp -d)}
run() {  # tag commit
    local clone=$scratch/$1
    rm -rf "$clone"; git clone -q "$repo" "$clone"; git -C "$clone" checkout -q "$2"
    local start end
    start=$(date +%s.%N)
    (cd "$clone" && PYTHONPATH=$clone PATH=$repo/.venv/bin:$PATH snakemake --profile profiles/local > "$clone.log" 2>&1)
    end=$(date +%s.%N)
    echo "$1 $2 $(echo "$end - $start" | bc) s"
    "$repo/.venv/bin/python" "$repo/benchmarks/demo_rules.py" --tree "$clone" | tail -1
}
for i in $(seq "$repeats"); do
    run "baseline-$i" "$baseline"
    run "this-$i" "$rev"
done
