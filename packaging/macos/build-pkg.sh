#!/usr/bin/env bash
# Builds the macOS installer package target/macos/an1256-<version>.pkg with pkgbuild:
#   /usr/local/an1256/an1256.ext       the extension and CLI (root:wheel 0755)
#   /usr/local/an1256/an1256-setup     wires it into osqueryd (--osquery) or fleetd (--fleet)
#   /usr/local/an1256/packs/           the osquery pack, its policy docs, the Fleet YAML
# Usage: packaging/macos/build-pkg.sh [--no-build] [--sign "Developer ID Installer: …"]
# Not under Homebrew's prefix: Homebrew's directories belong to the admin user,
# and osquery refuses an extension whose directory is writable by a non-root user.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

build=1
sign=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0 ;;
        --sign) sign=(--sign "${2:?--sign needs an identity}"); shift ;;
        *) echo "build-pkg.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[[ -n "$version" ]] || { echo "build-pkg.sh: no version in Cargo.toml" >&2; exit 1; }
((build)) && cargo build --release --locked
[[ -x target/release/an1256 ]] || { echo "build-pkg.sh: target/release/an1256 is missing" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
payload="$stage/root"
prefix="$payload/usr/local/an1256"
install -d -m 0755 "$prefix/packs/fleet"
install -m 0755 target/release/an1256 "$prefix/an1256.ext"
install -m 0755 packaging/an1256-setup "$prefix/an1256-setup"
install -d -m 0755 "$prefix/osquery"
install -m 0644 packaging/osquery/osquery.flags "$prefix/osquery/osquery.flags"
install -m 0644 packs/an1256.conf packs/POLICY.md packs/policy-default.json "$prefix/packs/"
install -m 0644 packs/fleet/*.yml "$prefix/packs/fleet/"
install -d -m 0755 "$prefix/packs/fleet/fleets"
install -m 0644 packs/fleet/fleets/*.yml "$prefix/packs/fleet/fleets/"
install -d -m 0755 "$prefix/packs/elastic"
install -m 0644 packs/elastic/an1256-pack.json "$prefix/packs/elastic/"

mkdir -p target/macos
out="target/macos/an1256-$version.pkg"
# --ownership recommended: every payload file is installed root:wheel whoever built it.
pkgbuild --root "$payload" \
    --identifier io.github.an1256 \
    --version "$version" \
    --install-location / \
    --ownership recommended \
    ${sign[@]+"${sign[@]}"} \
    "$out"
echo "$out"
