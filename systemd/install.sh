#!/usr/bin/env bash
# Installs posd as a systemd service from a built checkout (on Debian and
# derivatives, prefer the package: scripts/build-deb.sh, README.md):
#   cargo build --release && sudo systemd/install.sh
# Safe to run again (an upgrade): the config in /etc/posd is kept if present.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POSD_BIN_DIR:-target/release}
prefix=${PREFIX:-/usr/local}

install -m 0755 "$bin/posd" "$bin/posctl" "$prefix/bin/"
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
scripts/gen-docs.sh "$bin" "$gen"
# Man pages: posd is a daemon (section 8), posctl a command (section 1).
install -D -m 0644 -t "$prefix/share/man/man8" "$gen/man8/posd.8"
install -D -m 0644 -t "$prefix/share/man/man1" "$gen/man1/posctl.1"
rm -f "$prefix/share/man/man1/posd.1" # where an older install.sh put it
# Completions where each shell looks by default.
install -D -m 0644 -t /usr/share/bash-completion/completions "$gen"/bash/*
install -D -m 0644 -t "$prefix/share/zsh/site-functions" "$gen"/zsh/*
install -D -m 0644 -t "$prefix/share/fish/vendor_completions.d" "$gen"/fish/*

install -m 0644 systemd/posd.sysusers /usr/lib/sysusers.d/posd.conf
systemd-sysusers /usr/lib/sysusers.d/posd.conf
install -d -m 0755 /etc/posd
[ -e /etc/posd/posd.toml ] || install -m 0644 config/posd.toml /etc/posd/posd.toml
install -m 0644 systemd/posd.service /etc/systemd/system/posd.service
systemctl daemon-reload
echo "installed; start with: systemctl enable --now posd"
