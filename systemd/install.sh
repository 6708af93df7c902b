#!/usr/bin/env bash
# Installs posd as a systemd service from a built checkout (on Debian and
# derivatives, prefer the package: scripts/build-deb.sh, README.md):
#   cargo build --release && sudo systemd/install.sh
# Safe to run again (an upgrade): the config in /etc/posd is kept if present.
#   sudo systemd/install.sh --uninstall
# stops posd and removes what this script installed, but keeps the config
# (/etc/posd), the chain (/var/lib/posd) and the posd user, saying how to
# remove them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POSD_BIN_DIR:-target/release}
prefix=${PREFIX:-/usr/local}

if [ "${1:-}" = --uninstall ]; then
    if [ -e /etc/systemd/system/posd.service ]; then
        systemctl disable --now posd || true
    fi
    rm -f /etc/systemd/system/posd.service /usr/lib/sysusers.d/posd.conf \
        "$prefix/bin/posd" "$prefix/bin/posctl" \
        "$prefix/share/man/man8/posd.8" "$prefix/share/man/man1/posctl.1" \
        /usr/share/bash-completion/completions/posd /usr/share/bash-completion/completions/posctl \
        "$prefix/share/zsh/site-functions/_posd" "$prefix/share/zsh/site-functions/_posctl" \
        "$prefix/share/fish/vendor_completions.d/posd.fish" "$prefix/share/fish/vendor_completions.d/posctl.fish"
    systemctl daemon-reload
    echo "uninstalled; kept the config (/etc/posd), the chain (/var/lib/posd) and user posd."
    echo "To remove them too (back the chain up first): rm -r /etc/posd /var/lib/posd; userdel posd"
    exit 0
fi
[ $# = 0 ] || { echo "usage: $0 [--uninstall]" >&2; exit 2; }

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
