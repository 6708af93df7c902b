#!/usr/bin/env bash
# Power-loss test (SPEC §7): posd's data dir on LazyFS, a FUSE file system that
# drops every write not yet synced when told to. Under load, posd is SIGKILLed
# and the unsynced writes dropped (or a write torn) at random moments, then
# LazyFS is mounted afresh and posd restarted: everything it acknowledged must
# be there and `posctl chain verify` must pass, in every cycle. The driver is
# crates/posload/src/bin/powerloss/. Needs root and /dev/fuse; installs
# LazyFS's build packages and builds it once; otherwise says why and exits 0.
#
#   tests/powerloss/run.sh                              # 5 cycles (CI)
#   POSD_POWERLOSS_CYCLES=100 tests/powerloss/run.sh    # the long run
#   tests/powerloss/run.sh --cluster                    # one node of 3 on LazyFS
#   (further arguments go to the driver: see powerloss --help)
#   POSD_POWERLOSS_SEED=N                               # repeat a schedule
#   POSD_LAZYFS_SRC=DIR   LazyFS source with build.sh (default ../shared/tools/lazyfs)
#   POSD_LAZYFS_CACHE=DIR where LazyFS is built (default /var/tmp/posd-lazyfs)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${POSD_LAZYFS_SRC:-$(cd .. && pwd)/shared/tools/lazyfs}
cache=${POSD_LAZYFS_CACHE:-/var/tmp/posd-lazyfs}

skip() { echo "power-loss test: SKIPPED: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (to mount LazyFS)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$src/build.sh" ] || skip "no LazyFS source at $src (set POSD_LAZYFS_SRC)"
pkgs="g++ cmake make pkg-config libfuse3-dev fuse3 libspdlog-dev libtoml11-dev"
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    command -v apt-get >/dev/null || skip "no apt-get to install" $missing
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) \
        >/dev/null 2>&1 || skip "cannot install" $missing
fi
lazyfs=$("$src/build.sh" "$cache" | tail -1) || skip "LazyFS build failed (log in $cache)"
cargo build --release --locked -p posd -p posctl -p posload

# Short: LazyFS reads fault commands, which name files under it, in 100-byte chunks.
work=$(mktemp -d /var/tmp/posd-pl.XXXXXX)
driver=""
keep=""
cleanup() {
    # The driver's LazyFS and posd die with it (PR_SET_PDEATHSIG).
    if [ -n "$driver" ] && kill "$driver" 2>/dev/null; then wait "$driver" 2>/dev/null || true; fi
    if grep -q " $work/mnt " /proc/self/mounts; then fusermount3 -uz "$work/mnt"; fi
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# In the background, so a signal to this script reaches the trap at once.
target/release/powerloss --lazyfs "$lazyfs" --work "$work" "$@" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
if [ "$status" != 0 ]; then
    keep=1
    echo "power-loss test: FAILED; kept $work (root/data: posd's data as on disk; lazyfs.log)"
fi
exit "$status"
