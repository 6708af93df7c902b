#!/usr/bin/env bash
# A node joining a cluster whose chain is long receives it as a snapshot
# (the export format, streamed in 1 MiB chunks, verified on arrival).
# Measures `posctl cluster init` on a node holding BLOCKS blocks (it builds
# the first snapshot) and `posctl cluster add` of an empty node (transfer,
# verification, install, catch-up), then checks both chains are the same.
#
#   cargo build --release && scripts/bench-cluster-join.sh [BLOCKS] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
blocks=${1:-100000}
work=${2:-/tmp/posd-join}
bin=$PWD/target/release
rm -rf "$work"
mkdir -p "$work"
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
"$bin/posgen" --data-dir "$work/node1" --blocks "$blocks" >/dev/null
now() { date +%s.%N; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for id in 1 2; do
    "$bin/posd" --data-dir "$work/node$id" --listen "127.0.0.1:0" --node-id "$id" \
        --cluster-listen "127.0.0.1:$((19100 + id))" --cluster-secret-file "$work/secret" \
        --round-interval 1h --log-level warn 2>"$work/node$id.log" &
    pids+=($!)
done
for id in 1 2; do
    until "$bin/posctl" --socket "$work/node$id/admin.sock" status >/dev/null 2>&1 \
        || "$bin/posctl" --socket "$work/node$id/admin.sock" cluster status >/dev/null 2>&1; do
        sleep 0.05
    done
done
t0=$(now)
"$bin/posctl" --socket "$work/node1/admin.sock" --timeout 10m cluster init >/dev/null
t1=$(now)
"$bin/posctl" --socket "$work/node1/admin.sock" --timeout 10m cluster add 2 127.0.0.1:19102 >/dev/null
t2=$(now)
tip1=$("$bin/posctl" --socket "$work/node1/admin.sock" --json status | sed 's/.*"tip_hash":"\([0-9a-f]*\)".*/\1/')
tip2=$("$bin/posctl" --socket "$work/node2/admin.sock" --json status | sed 's/.*"tip_hash":"\([0-9a-f]*\)".*/\1/')
[ "$tip1" = "$tip2" ] || { echo "tips differ: $tip1 vs $tip2" >&2; exit 1; }
"$bin/posctl" --socket "$work/node2/admin.sock" --timeout 10m chain verify >/dev/null
snap=$(du -b "$work/node1/snapshots/current.jsonl" | cut -f1)
rss2=$(awk '/VmRSS/ {print $2}' "/proc/${pids[1]}/status")
awk -v b="$blocks" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v s="$snap" -v r="$rss2" 'BEGIN {
    printf "%d blocks: cluster init (first snapshot) %.1f s; cluster add (snapshot of %.0f MiB sent, verified, installed) %.1f s; joiner RSS %d MiB; tips equal, chain verify passes on the joiner\n",
        b, t1 - t0, s / 1048576, t2 - t1, r / 1024 }'
