#!/usr/bin/env bash
# Writes the man pages and shell completions that posd and posctl generate
# themselves, for systemd/install.sh and scripts/build-deb.sh:
#   scripts/gen-docs.sh BIN_DIR OUT_DIR
# OUT_DIR/man8/posd.8, man1/posctl.1 (posd is a daemon, posctl a command),
# bash/{posd,posctl}, zsh/{_posd,_posctl}, fish/{posd,posctl}.fish.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 BIN_DIR OUT_DIR" >&2; exit 2; }
bin=$1
out=$2
mkdir -p "$out/man8" "$out/man1" "$out/bash" "$out/zsh" "$out/fish"
"$bin/posd" --man > "$out/man8/posd.8"
"$bin/posctl" man > "$out/man1/posctl.1"
for cmd in posd posctl; do
    if [ "$cmd" = posd ]; then gen=("$bin/posd" --completions); else gen=("$bin/posctl" completions); fi
    "${gen[@]}" bash > "$out/bash/$cmd"
    "${gen[@]}" zsh > "$out/zsh/_$cmd"
    "${gen[@]}" fish > "$out/fish/$cmd.fish"
done
