#!/usr/bin/env bash
# Boots a real systemd (Debian bookworm in systemd-nspawn), installs the posd
# Debian package the way the README says (dpkg -i), checks the unit end to
# end, upgrades, removes and purges the package, then checks that
# systemd/install.sh (the route for other distributions) still works, and its
# --uninstall. Needs
# root and, for the first run, a Debian mirror: the host's own (its apt
# sources) or POSD_DEBIAN_MIRROR; otherwise it says why and exits 0 (skipped).
#
#   tests/systemd/run.sh            # builds the package with scripts/build-deb.sh
#   POSD_DEB=target/debian/posd_0.1.0-1_amd64.deb tests/systemd/run.sh   # a built one
#   POSD_NSPAWN_CACHE=/var/tmp/posd-nspawn tests/systemd/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
cache=${POSD_NSPAWN_CACHE:-/var/tmp/posd-nspawn}

skip() { echo "systemd container test: SKIPPED: $*"; exit 0; }

# The first mirror the host's apt sources use for bookworm: one-line entries
# ("deb [options] URI suite ...") or deb822 stanzas (URIs:, Suites:).
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] && awk '$1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == "bookworm") { print $i; exit }
        }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] && awk 'BEGIN { RS = ""; FS = "\n" } {
            types = uris = suites = ""; enabled = "yes"
            for (n = 1; n <= NF; n++) {
                if ($n ~ /^#/) continue
                split($n, kv, ":[ \t]*"); key = tolower(kv[1]); value = substr($n, length(kv[1]) + 2)
                if (key == "types") types = value
                else if (key == "uris") uris = value
                else if (key == "suites") suites = value
                else if (key == "enabled") enabled = value
            }
            if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ / bookworm / && enabled !~ /no/) {
                split(uris, u, " "); print u[1]; exit
            }
        }' "$f"
    done
}
say() { echo "== $*"; }
[ "$(id -u)" = 0 ] || skip "needs root"
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    command -v apt-get >/dev/null || skip "no debootstrap/systemd-nspawn and no apt-get"
    (apt-get update -qq && apt-get install -y -qq debootstrap systemd-container) >/dev/null 2>&1 \
        || skip "cannot install debootstrap and systemd-container"
fi

if [ ! -d "$cache/root" ]; then
    mirror=${POSD_DEBIAN_MIRROR:-$(host_mirror | head -n1 | tr -d ' \t')}
    [ -n "$mirror" ] || skip "no bookworm mirror in the host's apt sources; set POSD_DEBIAN_MIRROR"
    say "debootstrap bookworm minbase from $mirror into $cache/root (once)"
    mkdir -p "$cache"
    rm -rf "$cache/root.tmp"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,netcat-openbsd,procps,man-db \
        bookworm "$cache/root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || skip "debootstrap failed (no mirror?); see $cache/debootstrap.log"
    mv "$cache/root.tmp" "$cache/root"
fi
deb=${POSD_DEB:-$(scripts/build-deb.sh | tail -n1)}
[ -f "$deb" ] || { echo "FAIL: no Debian package at '$deb'"; exit 1; }
# install.sh's binaries (build-deb.sh built them).
[ -x target/release/posd ] && [ -x target/release/posctl ] || cargo build --release --locked

work=$(mktemp -d /var/tmp/posd-systemd.XXXXXX)
nspawn=""
cleanup() {
    if [ -n "$nspawn" ] && kill "$nspawn" 2>/dev/null; then
        # SIGTERM powers the container off; give it 20 s, then tear it down.
        for _ in $(seq 200); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn" 2>/dev/null || true
        wait "$nspawn" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
say "fresh copy of the root in $work"
cp -a "$cache/root" "$work/root"
root=$work/root
echo posd-test > "$root/etc/hostname"
mkdir -p "$root/opt/posd/target/release"
cp -a systemd config scripts "$root/opt/posd/"
cp target/release/posd target/release/posctl "$root/opt/posd/target/release/"
cp "$deb" "$root/opt/posd/posd.deb"

say "boot systemd in the container"
systemd-nspawn --register=no --keep-unit --private-network --boot -D "$root" \
    >"$work/console.log" 2>&1 &
nspawn=$!
init=""
for _ in $(seq 100); do
    init=$(pgrep -P "$nspawn" -x systemd || true)
    [ -n "$init" ] && break
    sleep 0.1
done
[ -n "$init" ] || { cat "$work/console.log"; echo "FAIL: container did not boot"; exit 1; }
ct() { nsenter -t "$init" -a "$@"; }
# The bus appears a moment after init starts: wait until systemd says it is up.
state=""
for _ in $(seq 600); do
    state=$(ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.1
done
say "container systemd: $state (pid $init)"
case "$state" in running|degraded) ;; *) cat "$work/console.log"; echo "FAIL: container systemd not up"; exit 1 ;; esac

fail() { echo "FAIL: $*"; ct journalctl -u posd --no-pager | tail -40; exit 1; }
check() { local what=$1; shift; if "$@"; then echo "ok: $what"; else fail "$what"; fi; }

# dpkg never asks here (stdin is empty): a conffile question would fail it.
ct_dpkg() { ct dpkg "$@" </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg $*"; }; }
# The parts every install route must get right.
check_installed() {
    local how=$1 unit=$2 bin=$3
    shift 3
    ct systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || true
    sed 's/^/   verify: /' "$work/verify.log"
    check "$how: systemd-analyze verify $unit is clean" test ! -s "$work/verify.log"
    check "$how: posd active (Type=notify: READY=1 was sent)" test "$(ct systemctl is-active posd)" = active
    check "$how: the unit runs $bin/posd" grep -q "path=$bin/posd " <<<"$(ct systemctl show -p ExecStart posd)"
    check "$how: admin socket in /run/posd" ct test -S /run/posd/admin.sock
    check "$how: socket mode 0660 posd:posd" test "$(ct stat -c '%a %U:%G' /run/posd/admin.sock)" = "660 posd:posd"
    check "$how: man page posd(8)" test -n "$(ct man -w 8 posd)"
    check "$how: posctl(1) lists every subcommand" grep -q "lottery explain" <<<"$(ct man posctl 2>/dev/null)"
    local f
    for f in "$@"; do
        check "$how: completion $f" ct test -s "$f"
    done
}

say "install the package as the README says: dpkg -i (it enables and starts posd)"
ct_dpkg -i /opt/posd/posd.deb
check "package: posd enabled" test "$(ct systemctl is-enabled posd)" = enabled
check_installed package /usr/lib/systemd/system/posd.service /usr/bin \
    /usr/share/bash-completion/completions/posctl /usr/share/zsh/vendor-completions/_posctl \
    /usr/share/fish/vendor_completions.d/posctl.fish

say "who may use posctl: members of group posd, as the README says"
ct useradd --create-home alice
ct useradd --create-home bob
ct usermod -aG posd alice
alice=$(ct runuser -u alice -- posctl status 2>&1) || fail "group member alice refused: $alice"
check "group member alice: posctl status" grep -q "^height" <<<"$alice"
bob=$(ct runuser -u bob -- posctl status 2>&1) && fail "bob, not in group posd, got in: $bob"
echo "   bob: $(head -1 <<<"$bob")"
check "bob is told he is not allowed" grep -q "user bob (uid [0-9]*) is not allowed" <<<"$bob"
check "bob is told how to get in" grep -q "usermod -aG posd bob" <<<"$bob"
# Past the file modes, posd's own check (PrivateUsers=yes: bob looks like nobody).
ct chmod 0755 /run/posd
ct chmod 0666 /run/posd/admin.sock
bob=$(ct runuser -u bob -- posctl status 2>&1) && fail "posd let bob in: $bob"
echo "   bob: $(head -1 <<<"$bob")"
check "posd refuses bob by his groups" grep -q "user bob (uid [0-9]*) is not allowed: only root" <<<"$bob"
alice=$(ct runuser -u alice -- posctl status 2>&1) || fail "posd refused alice: $alice"
check "posd lets alice in by her groups" grep -q "^height" <<<"$alice"
ct chmod 0660 /run/posd/admin.sock
ct chmod 0750 /run/posd

# The validator stays connected (its proposal stands) while posctl closes the round.
ct bash -c "(printf '100\n72\n'; sleep 3) | nc -q0 127.0.0.1 9000 > /tmp/nc.out" &
ncjob=$!
sleep 1
reg=$(ct cat /tmp/nc.out)
echo "$reg" | sed -n 's/^/   nc: /p' | head -4
check "nc validator registered" grep -q "Validator address:" <<<"$reg"
run=$(ct posctl lottery run)
echo "   posctl: $run" | head -2
check "posctl lottery run commits block 1" grep -q "^block 1 committed" <<<"$run"
wait "$ncjob" || true

ct systemctl restart posd
check "restart keeps the chain (height 1)" grep -q '"height":1,' <<<"$(ct posctl --json status)"

ct sed -i 's/^#round_interval = "30s"/round_interval = "2s"/' /etc/posd/posd.toml
ct systemctl reload posd
check "reload applied round_interval = 2s" grep -q '"round_interval_ms":2000' <<<"$(ct posctl --json status)"
check "reload logged" grep -q "config reloaded" <<<"$(ct journalctl -u posd --no-pager)"
ready=$(ct journalctl -u posd -o cat --no-pager | grep -m1 "posd ready")
echo "   journal: $ready"
check "no second timestamp under journald" grep -qv '^20[0-9][0-9]-' <<<"$ready"

say "upgrade: dpkg -i again keeps the edited config and the chain, restarts posd"
pid=$(ct systemctl show -p MainPID --value posd)
ct_dpkg -i /opt/posd/posd.deb
check "upgrade: posd active" test "$(ct systemctl is-active posd)" = active
check "upgrade: posd restarted" test "$(ct systemctl show -p MainPID --value posd)" != "$pid"
status=$(ct posctl --json status)
check "upgrade: chain kept (height 1)" grep -q '"height":1,' <<<"$status"
check "upgrade: edited config kept (round_interval = 2s)" grep -q '"round_interval_ms":2000' <<<"$status"

ct systemctl stop posd
check "stop ends with Result=success" test "$(ct systemctl show -p Result --value posd)" = success
check "socket removed on stop" ct test ! -e /run/posd/admin.sock

say "live security score"
ct systemd-analyze security posd --no-pager | tail -1

say "dpkg --remove stops posd and keeps the config and the chain"
ct systemctl start posd
ct_dpkg --remove posd
check "remove: posd stopped" test -z "$(ct pgrep -x posd || true)"
check "remove: binaries gone" ct test ! -e /usr/bin/posd -a ! -e /usr/bin/posctl
check "remove: unit file gone" ct test ! -e /usr/lib/systemd/system/posd.service
check "remove: unit masked until purge (deb-systemd-helper)" test "$(ct systemctl show -p LoadState --value posd)" = masked
check "remove: /etc/posd/posd.toml kept" ct test -s /etc/posd/posd.toml
check "remove: chain in /var/lib/posd kept" test -n "$(ct ls -A /var/lib/posd)"

say "dpkg --purge deletes the config and the chain; the posd user stays"
ct_dpkg --purge posd
check "purge: dpkg forgot posd" test -z "$(ct dpkg-query -W posd 2>/dev/null || true)"
check "purge: systemd forgot posd.service" test "$(ct systemctl show -p LoadState --value posd)" = not-found
check "purge: no /etc/posd" ct test ! -e /etc/posd
check "purge: no /var/lib/posd" ct test ! -e /var/lib/posd
# /var/cache/man: man-db's formatted pages from this test's own man runs.
left=$(ct find /etc /usr /var /run -xdev -path /var/cache/man -prune -o \
    \( -name '*posd*' -o -name '*posctl*' \) -print)
[ -z "$left" ] || echo "$left" | sed 's/^/   left: /'
check "purge: no file named posd or posctl left" test -z "$left"
check "purge: user posd kept (Debian leaves system users)" test -n "$(ct getent passwd posd)"

say "systemd/install.sh (other distributions) still works"
ct bash -c 'cd /opt/posd && systemd/install.sh' >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install.sh"; }
ct systemctl enable --now posd
check_installed install.sh /etc/systemd/system/posd.service /usr/local/bin \
    /usr/share/bash-completion/completions/posctl /usr/local/share/zsh/site-functions/_posctl \
    /usr/local/share/fish/vendor_completions.d/posctl.fish
check "install.sh: a new chain after the purge (height 0)" grep -q '"height":0,' <<<"$(ct posctl --json status)"

say "install.sh --uninstall removes what it installed, keeps config and chain"
ct bash -c 'cd /opt/posd && systemd/install.sh --uninstall' >"$work/uninstall.log" 2>&1 \
    || { cat "$work/uninstall.log"; fail "install.sh --uninstall"; }
check "install.sh --uninstall: posd stopped, programs and unit gone" ct sh -c \
    '! systemctl is-active --quiet posd && [ ! -e /usr/local/bin/posd ] && [ ! -e /usr/local/bin/posctl ] && [ ! -e /etc/systemd/system/posd.service ]'
check "install.sh --uninstall: config and chain kept" ct sh -c '[ -e /etc/posd/posd.toml ] && [ -d /var/lib/posd/sled ]'
echo "systemd container test: PASSED"
