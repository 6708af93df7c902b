#!/usr/bin/env bash
# A 3-node cluster on loopback against a standalone posd, same binary, same
# run: registrations per second from 1 client (the time of one commit) and
# from 100 (group commit), entering at the leader and at a follower (which
# forwards to the leader), and `posctl lottery run` (a round's commit).
#
#   cargo build --release && scripts/bench-cluster.sh [WORK_DIR] [RUNS] [RELEASE_DIR ...]
# With several release dirs (e.g. before and after a change), each run goes
# through them in turn, so their runs are interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/posd-cluster-bench}
runs=${2:-3}
shift 2 || shift $#
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=("$PWD/target/release")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
ready() { until "$bin/posctl" --socket "$1" status >/dev/null 2>&1 \
    || "$bin/posctl" --socket "$1" cluster status >/dev/null 2>&1; do sleep 0.05; done; }
register() { # ADDR SOCKET CLIENTS TOTAL
    "$bin/posload" --addr "$1" --socket "$2" register --clients "$3" --total "$4" \
        | sed -n 's/.* = \([0-9]*\/s\) (latency p50 \([^,]*\),.*/\1 (p50 \2)/p'; }
rounds() { # SOCKET
    local t0 t1; t0=$(date +%s%N)
    for _ in $(seq 20); do "$bin/posctl" --socket "$1" lottery run >/dev/null; done
    t1=$(date +%s%N); echo "lottery run $(( (t1 - t0) / 20000 )) us"; }
for run in $(seq "$runs"); do
  for bin in "${dirs[@]}"; do
    rm -rf "$work"; mkdir -p "$work"; umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
    common=(--round-interval 1h --registration-rate 0 --log-level warn)
    "$bin/posd" --data-dir "$work/solo" --listen 127.0.0.1:19200 "${common[@]}" 2>/dev/null &
    pids+=($!)
    for id in 1 2 3; do
        "$bin/posd" --data-dir "$work/node$id" --listen "127.0.0.1:1920$id" "${common[@]}" \
            --node-id "$id" --cluster-listen "127.0.0.1:1930$id" --cluster-secret-file "$work/secret" 2>/dev/null &
        pids+=($!)
    done
    for d in solo node1 node2 node3; do ready "$work/$d/admin.sock"; done
    "$bin/posctl" --socket "$work/node1/admin.sock" cluster init >/dev/null
    for id in 2 3; do
        "$bin/posctl" --socket "$work/node1/admin.sock" cluster add "$id" "127.0.0.1:1930$id" >/dev/null
    done
    echo "run $run, $bin (load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "  standalone: 1 client $(register 127.0.0.1:19200 "$work/solo/admin.sock" 1 1000);" \
        "100 clients $(register 127.0.0.1:19200 "$work/solo/admin.sock" 100 10000); $(rounds "$work/solo/admin.sock")"
    echo "  cluster, at the leader: 1 client $(register 127.0.0.1:19201 "$work/node1/admin.sock" 1 1000);" \
        "100 clients $(register 127.0.0.1:19201 "$work/node1/admin.sock" 100 10000); $(rounds "$work/node1/admin.sock")"
    echo "  cluster, at a follower: 1 client $(register 127.0.0.1:19202 "$work/node2/admin.sock" 1 1000);" \
        "100 clients $(register 127.0.0.1:19202 "$work/node2/admin.sock" 100 10000); $(rounds "$work/node2/admin.sock")"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
  done
done
