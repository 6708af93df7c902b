#!/usr/bin/env bash
# Installs posd as a systemd service from a built checkout:
#   cargo build --release && sudo systemd/install.sh
# Safe to run again (an upgrade): the config in /etc/posd is kept if present.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POSD_BIN_DIR:-target/release}
prefix=${PREFIX:-/usr/local}

install -m 0755 "$bin/posd" "$bin/posctl" "$prefix/bin/"
# Man pages: posd is a daemon (section 8), posctl a command (section 1).
install -d "$prefix/share/man/man8" "$prefix/share/man/man1"
"$bin/posd" --man > "$prefix/share/man/man8/posd.8"
"$bin/posctl" man > "$prefix/share/man/man1/posctl.1"
rm -f "$prefix/share/man/man1/posd.1" # where an older install.sh put it
# Completions where each shell looks by default.
bash_dir=/usr/share/bash-completion/completions
zsh_dir=$prefix/share/zsh/site-functions
fish_dir=$prefix/share/fish/vendor_completions.d
install -d "$bash_dir" "$zsh_dir" "$fish_dir"
for cmd in posd posctl; do
    if [ "$cmd" = posd ]; then gen=("$bin/posd" --completions); else gen=("$bin/posctl" completions); fi
    "${gen[@]}" bash > "$bash_dir/$cmd"
    "${gen[@]}" zsh > "$zsh_dir/_$cmd"
    "${gen[@]}" fish > "$fish_dir/$cmd.fish"
done

install -m 0644 systemd/posd.sysusers /usr/lib/sysusers.d/posd.conf
systemd-sysusers /usr/lib/sysusers.d/posd.conf
install -d -m 0755 /etc/posd
[ -e /etc/posd/posd.toml ] || install -m 0644 config/posd.toml /etc/posd/posd.toml
install -m 0644 systemd/posd.service /etc/systemd/system/posd.service
systemctl daemon-reload
echo "installed; start with: systemctl enable --now posd"
