#!/usr/bin/env bash
# Installs govex's build and test dependencies from Debian's packages and builds it.
# Usage: bash Deploy/setup.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libpq-dev libssl-dev liblz4-dev pkg-config postgresql postgresql-contrib lz4 openssl python3 strace curl ca-certificates)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts a cluster on port 5432 when it installs postgresql; govex's tests never use it.

if ! command -v swift >/dev/null; then
    echo "setup: no swift on PATH; install the Swift 6 toolchain (swift.org) and run this again" >&2
    exit 1
fi

configuration=debug
[[ "${1:-}" == "--release" ]] && configuration=release
echo "setup: building govex ($configuration)" >&2
swift build -c "$configuration"
echo "setup: done; the binary is $(swift build -c "$configuration" --show-bin-path)/govex" >&2
