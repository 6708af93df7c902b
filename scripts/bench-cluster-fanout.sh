#!/usr/bin/env bash
# Issue 26 part 4: 30,000 validators over a 3-node cluster, 10,000 on each
# node, every one proposing; rounds forced at the leader, timed until the last
# client of any node has the block; then the floor (`posload floor`) serving
# as many clients from FLOOR_PROCESSES processes (one may hold 20,000 sockets
# here). Prints cluster ÷ floor at p50 and p99 and each node's RSS per
# connection. With several release dirs their runs are interleaved; all use
# the same posload.
#
#   cargo build --release -p posd -p posctl -p posload
#   scripts/bench-cluster-fanout.sh [RUNS] [POSD_RELEASE_DIR ...]   (default: target/release)
#   POSLOAD=PATH picks the posload; POSD_FANOUT_CONNECTIONS (per node, 10000),
#   POSD_FANOUT_ROUNDS (10), FLOOR_PROCESSES (2), WORK (/tmp/posd-fanout-bench),
#   SETTLE_LOAD (3: each run waits until the 1-minute load is below it, 2 min at most)
set -euo pipefail
export RUST_BACKTRACE=0
cd "$(dirname "$0")/.."
runs=${1:-1}
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=("$PWD/target/release")
load=${POSLOAD:-$PWD/target/release/posload}
n=${POSD_FANOUT_CONNECTIONS:-10000}
rounds=${POSD_FANOUT_ROUNDS:-10}
work=${WORK:-/tmp/posd-fanout-bench}
ulimit -n 20000   # each posd and each posload child holds one socket per connection
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
ready() { until "$bin/posctl" --socket "$1" status >/dev/null 2>&1 \
    || "$bin/posctl" --socket "$1" cluster status >/dev/null 2>&1; do sleep 0.05; done; }
for run in $(seq "$runs"); do
  for bin in "${dirs[@]}"; do
    rm -rf "$work"; mkdir -p "$work"; umask 077   # logs stay in $work/node*.log
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
    for id in 1 2 3; do
        "$bin/posd" --data-dir "$work/node$id" --listen "127.0.0.1:1940$id" --round-interval 1h \
            --registration-rate 0 --max-connections $((n + 100)) --log-level warn \
            --node-id "$id" --cluster-listen "127.0.0.1:1941$id" --cluster-secret-file "$work/secret" 2>"$work/node$id.log" &
        pids+=($!)
    done
    for id in 1 2 3; do ready "$work/node$id/admin.sock"; done
    "$bin/posctl" --socket "$work/node1/admin.sock" cluster init >/dev/null
    for id in 2 3; do
        "$bin/posctl" --socket "$work/node1/admin.sock" cluster add "$id" "127.0.0.1:1941$id" >/dev/null
    done
    for id in 1 2 3; do   # every node has the chain
        until "$bin/posctl" --socket "$work/node$id/admin.sock" status >/dev/null 2>&1; do sleep 0.1; done
    done
    # The run before leaves the load high for a while (its fsync waits and
    # exits): let it fall (1-minute average below SETTLE_LOAD, 3; at most
    # 2 min) so interleaved binaries start alike.
    for _ in $(seq 24); do awk -v max="${SETTLE_LOAD:-3}" '{exit !($1 < max)}' /proc/loadavg && break; sleep 5; done
    echo "run $run, $bin (load $(cut -d' ' -f1-3 /proc/loadavg)):"
    "$load" --socket "$work/node1/admin.sock" broadcast --connections "$n" --rounds "$rounds" --floor \
        --nodes 127.0.0.1:19401,127.0.0.1:19402,127.0.0.1:19403 \
        --node-sockets "$work/node1/admin.sock,$work/node2/admin.sock,$work/node3/admin.sock" \
        --floor-processes "${FLOOR_PROCESSES:-2}" | sed 's/^/  /'
    echo "  (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
  done
done
