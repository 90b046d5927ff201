#!/usr/bin/env bash
# Installs govex on a machine without dpkg, as the .deb would: the binary, the systemd units
# (pointed at it), the users (sysusers.d) and directories (tmpfiles.d), the examples and
# guides. Nothing is enabled or started (docs/operator-guide.md says what comes first).
#
# Usage: bash Deploy/install.sh [--binary PATH] [--prefix /usr/local] [--root DIR]
#   --binary PATH   the govex to install (default: a release build made now)
#   --prefix DIR    where the binary and the docs go (default /usr/local: bin/, share/doc/govex/)
#   --root DIR      install under DIR instead of / (to inspect it, or for an image)
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" prefix="/usr/local" root=""
while (($#)); do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --root) root="$(realpath -m "$2")"; shift 2 ;;
        *) echo "install: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done
[[ "$prefix" == /* ]] || { echo "install: --prefix must be an absolute path, not $prefix" >&2; exit 2; }
if [[ -z "$binary" ]]; then
    swift build -c release --static-swift-stdlib --product govex
    binary="$(swift build -c release --show-bin-path)/govex"
fi
[[ -x "$binary" ]] || { echo "install: $binary is not an executable" >&2; exit 2; }
[[ -n "$root" || $(id -u) -eq 0 ]] || { echo "install: run as root (it creates users and writes /etc)" >&2; exit 2; }

install -D -m 0755 "$binary" "$root$prefix/bin/govex"
units="$root/etc/systemd/system"
install -d -m 0755 "$units"
for unit in govex-agent govex-hub; do
    sed "s|/usr/bin/govex|$prefix/bin/govex|g" "systemd/$unit.service" > "$units/$unit.service"
    chmod 0644 "$units/$unit.service"
done
install -D -m 0644 Deploy/package/govex.sysusers "$root/etc/sysusers.d/govex.conf"
install -D -m 0644 Deploy/package/govex.tmpfiles "$root/etc/tmpfiles.d/govex.conf"
doc="$root$prefix/share/doc/govex"
install -d -m 0755 "$doc/examples"
for guide in README.md CHANGELOG.md docs/*.md; do install -m 0644 "$guide" "$doc/$(basename "$guide")"; done
for example in agent hub catalog; do install -m 0644 "Deploy/$example.example.toml" "$doc/examples/$example.toml"; done
install -m 0644 Deploy/prometheus/govex-alerts.yml "$doc/examples/govex-alerts.yml"
sed -i "s|file:///usr/share/doc/govex/|file://$prefix/share/doc/govex/|" "$units"/govex-*.service

if [[ -n "$root" ]]; then
    systemd-sysusers --root="$root" govex.conf
    systemd-tmpfiles --root="$root" --create govex.conf
else
    systemd-sysusers govex.conf
    systemd-tmpfiles --create govex.conf
    if [[ -d /run/systemd/system ]]; then systemctl daemon-reload; fi
fi
echo "install: govex $("$root$prefix/bin/govex" --version) in $root$prefix/bin; units in $units; next: docs/operator-guide.md"
