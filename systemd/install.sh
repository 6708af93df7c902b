#!/usr/bin/env bash
# Installs posd as a systemd service from a built checkout:
#   cargo build --release && sudo systemd/install.sh
# Safe to run again (an upgrade): the config in /etc/posd is kept if present.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POSD_BIN_DIR:-target/release}
prefix=${PREFIX:-/usr/local}

install -m 0755 "$bin/posd" "$bin/posctl" "$prefix/bin/"
install -d "$prefix/share/man/man1" /usr/share/bash-completion/completions
"$bin/posd" --man > "$prefix/share/man/man1/posd.1"
"$bin/posctl" man > "$prefix/share/man/man1/posctl.1"
"$bin/posd" --completions bash > /usr/share/bash-completion/completions/posd
"$bin/posctl" completions bash > /usr/share/bash-completion/completions/posctl

install -m 0644 systemd/posd.sysusers /usr/lib/sysusers.d/posd.conf
systemd-sysusers /usr/lib/sysusers.d/posd.conf
install -d -m 0755 /etc/posd
[ -e /etc/posd/posd.toml ] || install -m 0644 config/posd.toml /etc/posd/posd.toml
install -m 0644 systemd/posd.service /etc/systemd/system/posd.service
systemctl daemon-reload
echo "installed; start with: systemctl enable --now posd"
