#!/usr/bin/env bash
# A standalone posd before and after a change, runs interleaved (before,
# after, before, ...) so that a shared machine's load falls on both alike.
#
#   scripts/bench-standalone-ab.sh BEFORE_RELEASE_DIR AFTER_RELEASE_DIR [RUNS]
set -euo pipefail
before=$1 after=$2 runs=${3:-3}
for run in $(seq "$runs"); do
  for side in before after; do
    case $side in before) bin=$before;; after) bin=$after;; esac
    d=$(mktemp -d); "$bin/posd" --data-dir $d/data --listen 127.0.0.1:19400 --round-interval 1h --registration-rate 0 --log-level warn 2>/dev/null & pid=$!
    until "$bin/posctl" --socket $d/data/admin.sock status >/dev/null 2>&1; do sleep 0.05; done
    r1=$("$bin/posload" --addr 127.0.0.1:19400 --socket $d/data/admin.sock register --clients 1 --total 1000 | sed -n 's/.* = \([0-9]*\)\/s.*/\1/p')
    r100=$("$bin/posload" --addr 127.0.0.1:19400 --socket $d/data/admin.sock register --clients 100 --total 10000 | sed -n 's/.* = \([0-9]*\)\/s.*/\1/p')
    pr=$("$bin/posload" --addr 127.0.0.1:19400 --socket $d/data/admin.sock propose --connections 1000 --lines 200 | grep -o '[0-9]* lines/s' | head -1)
    echo "run $run $side: register 1 client $r1/s, 100 clients $r100/s, propose $pr"
    kill $pid; wait $pid 2>/dev/null || true; rm -rf $d
  done
done
