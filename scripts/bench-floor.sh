#!/usr/bin/env bash
# posd's fan-out against the floor (`posload floor`) in the same run: 10,000
# validators that all stake and propose, then one forced round, 20 times; and
# the floor's 20 rounds to as many clients, after posd's in odd runs and
# before them in even ones (so neither side always follows the other);
# posload reports posd ÷ floor at p50 and p99, for each client's delay (over
# every delivery) and for each round's last client, and each round's figures.
# With several posd release dirs, their runs are interleaved (A, B, A, B, ...)
# and all use the same posload.
#
#   cargo build --release -p posd -p posctl -p posload
#   scripts/bench-floor.sh [RUNS] [POSD_RELEASE_DIR ...]     (default: target/release)
#   POSLOAD=PATH picks the posload (default: this tree's release build)
#   SETTLE_LOAD=L: each run first waits until the 1-minute load is below L
#   (2 min at most); back to back, runs leave the load at 4-6
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=("$PWD/target/release")
load=${POSLOAD:-$PWD/target/release/posload}
n=${POSD_FLOOR_CONNECTIONS:-10000}
rounds=${POSD_FLOOR_ROUNDS:-20}
ulimit -n 20000   # posd and posload each hold one socket per connection
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
for run in $(seq "$runs"); do
    for bin in "${dirs[@]}"; do
        for _ in $(seq 24); do
            [ -z "${SETTLE_LOAD:-}" ] || awk -v max="$SETTLE_LOAD" '{exit !($1 < max)}' /proc/loadavg && break
            sleep 5
        done
        d=$(mktemp -d)
        "$bin/posd" --data-dir "$d/data" --listen 127.0.0.1:19500 --round-interval 1h \
            --registration-rate 0 --max-connections $((n + 100)) --log-level warn 2>/dev/null &
        pid=$!
        until "$bin/posctl" --socket "$d/data/admin.sock" status >/dev/null 2>&1; do sleep 0.05; done
        order=--floor; [ $((run % 2)) = 1 ] || order=--floor-first
        echo "run $run, $bin (load $(cut -d' ' -f1-3 /proc/loadavg), $order):"
        "$load" --addr 127.0.0.1:19500 --socket "$d/data/admin.sock" broadcast \
            --connections "$n" --rounds "$rounds" --all-propose "$order" --each | sed 's/^/  /'
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; rm -rf "$d"
    done
done
