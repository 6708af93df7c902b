#!/usr/bin/env bash
# The 1,000,000-block figures of docs/BENCHMARKS.md: posd startup and RSS,
# `posctl chain show --json`, `posctl chain verify`, size on disk.
#
#   cargo build --release && scripts/bench-chain.sh [DATA_DIR] [BLOCKS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/posd-1m}
blocks=${2:-1000000}
runs=${3:-3}
bin=target/release
[ -d "$dir/sled" ] || "$bin/posgen" --data-dir "$dir" --blocks "$blocks"
sock=$dir/admin.sock
now() { date +%s.%N; }

for run in $(seq "$runs"); do
    start=$(now)
    "$bin/posd" --data-dir "$dir" --listen 127.0.0.1:0 --log-level warn &
    pid=$!
    until "$bin/posctl" --socket "$sock" status >/dev/null 2>&1; do sleep 0.01; done
    ready=$(now)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    t0=$(now); "$bin/posctl" --socket "$sock" --json chain show >/dev/null; t1=$(now)
    "$bin/posctl" --socket "$sock" chain verify >/dev/null; t2=$(now)
    rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid"
    awk -v r="$run" -v s="$start" -v rd="$ready" -v a="$t0" -v b="$t1" -v c="$t2" -v n="$blocks" \
        -v rss="$rss" -v rss2="$rss_after" 'BEGIN {
        printf "run %d: ready in %.2fs, rss %d KiB (%d KiB after show+verify); chain show %.0f blocks/s; chain verify %.0f blocks/s\n",
            r, rd - s, rss, rss2, (n + 1) / (b - a), (n + 1) / (c - b) }'
done
echo "on disk: $(du -sb "$dir/sled" | cut -f1) bytes"
