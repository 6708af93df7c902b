#!/usr/bin/env bash
# Builds the Debian package target/debian/posd_<version>-1_<arch>.deb: the
# release build, then the man pages, completions and the unit (ExecStart in
# /usr/bin) in crates/posd/debian/generated, then cargo-deb (installed,
# pinned, when missing). What goes where: [package.metadata.deb] in
# crates/posd/Cargo.toml.
# Binaries are stripped (Debian policy); arguments go to cargo deb (e.g.
# --dbgsym for a posd-dbgsym .ddeb with the debug symbols).
# Prints the package's path as the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "installing cargo-deb $cargo_deb_version" >&2
    cargo install cargo-deb --version "=$cargo_deb_version" --locked >&2
fi

cargo build --release --locked >&2
bin=${CARGO_TARGET_DIR:-target}/release
assets=crates/posd/debian/generated
rm -rf "$assets"
mkdir -p "$assets"
scripts/gen-docs.sh "$bin" "$assets"
# The package's binaries live in /usr/bin, install.sh's in /usr/local/bin.
sed 's|^ExecStart=/usr/local/bin/posd |ExecStart=/usr/bin/posd |' systemd/posd.service > "$assets/posd.service"
grep -q '^ExecStart=/usr/bin/posd ' "$assets/posd.service" \
    || { echo "error: systemd/posd.service: no ExecStart=/usr/local/bin/posd line to rewrite" >&2; exit 1; }
cp systemd/posd.sysusers "$assets/posd.sysusers"
# /usr/share/doc/posd/copyright: cargo-deb's header (License: MIT OR
# Apache-2.0), then each licence's whole text as a copyright-format stanza
# (continuation lines start with a space, an empty line is " .").
for licence in "MIT LICENSE-MIT" "Apache-2.0 LICENSE-APACHE"; do
    read -r name file <<<"$licence"
    echo
    echo "License: $name"
    sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$file"
done > "$assets/licenses"
cargo deb -p posd --no-build --locked --strip "$@"
