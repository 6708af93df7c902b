#!/usr/bin/env bash
# Registration latency and rate at a 3-node cluster's leader, two builds of
# posd (e.g. unsealed cluster links, before SPEC §14, and sealed), runs
# interleaved (A, B, A, ...) so that a shared machine's load falls on both
# alike. Each side uses its own posctl and posload.
#
#   scripts/bench-cluster-ab.sh A_RELEASE_DIR B_RELEASE_DIR [RUNS] [WORK_DIR]
set -euo pipefail
a=$1 b=$2 runs=${3:-3} work=${4:-/tmp/posd-cluster-ab}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
ready() { until "$1/posctl" --socket "$2" status >/dev/null 2>&1 \
    || "$1/posctl" --socket "$2" cluster status >/dev/null 2>&1; do sleep 0.05; done; }
register() { # BIN CLIENTS TOTAL
    "$1/posload" --addr 127.0.0.1:19501 --socket "$work/node1/admin.sock" register --clients "$2" --total "$3" \
        | sed -n 's/.* = \([0-9]*\/s\) (latency p50 \([^,]*\), p99 \([^,]*\),.*/\1, p50 \2, p99 \3/p'; }
for run in $(seq "$runs"); do
    for side in A B; do
        case $side in A) bin=$a ;; B) bin=$b ;; esac
        rm -rf "$work"; mkdir -p "$work"; umask 077
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
        for id in 1 2 3; do
            "$bin/posd" --data-dir "$work/node$id" --listen "127.0.0.1:1950$id" \
                --round-interval 1h --registration-rate 0 --log-level warn --node-id "$id" \
                --cluster-listen "127.0.0.1:1960$id" --cluster-secret-file "$work/secret" 2>/dev/null &
            pids+=($!)
        done
        for id in 1 2 3; do ready "$bin" "$work/node$id/admin.sock"; done
        "$bin/posctl" --socket "$work/node1/admin.sock" cluster init >/dev/null
        for id in 2 3; do
            "$bin/posctl" --socket "$work/node1/admin.sock" cluster add "$id" "127.0.0.1:1960$id" >/dev/null
        done
        echo "run $run $side: 1 client $(register "$bin" 1 1000); 100 clients $(register "$bin" 100 10000)"
        kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
    done
done
