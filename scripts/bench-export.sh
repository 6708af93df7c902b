#!/usr/bin/env bash
# The export/import figures of docs/BENCHMARKS.md on a posgen chain: `posctl
# export` from a serving posd, `posd import` of that file, a re-export of the
# import (which must be byte-identical), and `posctl backup`; wall time and
# peak RSS (GNU time) of each, posd's RSS while it exports, and the file size.
#
#   cargo build --release && scripts/bench-export.sh [DATA_DIR] [BLOCKS] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/posd-1m}
blocks=${2:-1000000}
work=${3:-/tmp/posd-export-bench}
bin=$PWD/target/release
[ -d "$dir/sled" ] || "$bin/posgen" --data-dir "$dir" --blocks "$blocks"
rm -rf "$work" && mkdir -p "$work"

# Runs a command under GNU time; prints "<label>: <seconds> s, peak RSS <KiB> KiB".
measure() {
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@"
    read -r secs kib < "$work/time"
    echo "$label: $secs s, peak RSS $kib KiB"
}

# Starts posd on $1 and waits until it answers; sets $pid and $sock.
serve() {
    sock=$1/admin.sock
    "$bin/posd" --data-dir "$1" --listen 127.0.0.1:0 --round-interval 1h --log-level warn &
    pid=$!
    until "$bin/posctl" --socket "$sock" status >/dev/null 2>&1; do sleep 0.05; done
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

pid=
trap '[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' EXIT
stop() { kill -TERM "$pid"; wait "$pid"; pid=; }

serve "$dir"
echo "posd serving $dir: RSS $(kib "$pid" VmRSS) KiB"
measure "posctl export" "$bin/posctl" --socket "$sock" --timeout 1m export "$work/chain.jsonl"
echo "posd after the export: RSS $(kib "$pid" VmRSS) KiB, peak $(kib "$pid" VmHWM) KiB"
measure "posctl backup" "$bin/posctl" --socket "$sock" --timeout 1m backup "$work/backup"
stop
"$bin/posd" --check --data-dir "$work/backup"
rm -rf "$work/backup"
echo "file: $(stat -c %s "$work/chain.jsonl") bytes, $(wc -l < "$work/chain.jsonl") lines"

measure "posd import" "$bin/posd" import "$work/chain.jsonl" --data-dir "$work/imported"
measure "posd --check (imported)" "$bin/posd" --check --data-dir "$work/imported"
echo "imported data dir: $(du -sb "$work/imported/sled" | cut -f1) bytes"

serve "$work/imported"
"$bin/posctl" --socket "$sock" --timeout 1m export "$work/again.jsonl"
stop
cmp "$work/chain.jsonl" "$work/again.jsonl" && echo "re-export of the import: byte-identical"
rm -rf "$work"
