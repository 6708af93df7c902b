#!/usr/bin/env bash
# A rolling upgrade of a 3-node cluster from one posd build to another, one
# node at a time (followers first), printing what each node says after each
# step (docs/CLUSTER.md, "Rolling upgrade from peer protocol 1").
#
#   scripts/try-rolling-upgrade.sh OLD_RELEASE_DIR NEW_RELEASE_DIR [WORK_DIR]
set -u
old=$1 new=$2 w=${3:-/tmp/posd-upgrade}
rm -rf $w; mkdir -p $w; umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $w/secret
declare -A pid
start() { # BIN ID
  "$1/posd" --data-dir $w/node$2 --listen 127.0.0.1:1970$2 --round-interval 1h --registration-rate 0 \
    --node-id $2 --cluster-listen 127.0.0.1:1980$2 --cluster-secret-file $w/secret --election-timeout 1s 2>>$w/node$2.log &
  pid[$2]=$!
  until "$1/posctl" --socket $w/node$2/admin.sock cluster status >/dev/null 2>&1; do sleep 0.05; done; }
status() { for id in 1 2 3; do echo "  node $id: $($old/posctl --socket $w/node$id/admin.sock cluster status --json 2>&1 | tr -d '\n' | sed 's/"members".*//' | cut -c1-150)"; done; }
acked=0
reg() { # ID N: prints the result, counts what was acknowledged
  local out; out=$(timeout 20 $old/posload --addr 127.0.0.1:1970$1 --socket $w/node$1/admin.sock register --clients 1 --total $2 2>&1 | grep -o "registrations: .*/s")
  if [ -n "$out" ]; then acked=$((acked + $2)); echo "$out"; else echo failed; fi; }
for id in 1 2 3; do start $old $id; done
$old/posctl --socket $w/node1/admin.sock cluster init >/dev/null
for id in 2 3; do $old/posctl --socket $w/node1/admin.sock cluster add $id 127.0.0.1:1980$id >/dev/null; done
echo "all old:"; status; reg 1 20 >/dev/null; echo "  register at 1: $acked"
for id in 3 2 1; do
  kill ${pid[$id]}; wait ${pid[$id]}
  start $new $id
  sleep 3
  echo "node $id upgraded (+3 s):"; status
  for at in 1 2 3; do echo "  register at $at:"; reg $at 20; done
done
sleep 2; echo "end:"; status
for id in 1 2 3; do
  echo "  node $id: $($old/posctl --socket $w/node$id/admin.sock validators --all | wc -l) validators," \
    "tip $($old/posctl --socket $w/node$id/admin.sock status | grep -i tip)"
done
echo "acknowledged registrations: $acked"
for id in 1 2 3; do echo "node $id log:"; grep -E "refused|version|broken" $w/node$id.log | sed 's/^/    /' | cut -c1-260 | sort | uniq -c | sort -rn | head -4; done
kill ${pid[1]} ${pid[2]} ${pid[3]}; wait
