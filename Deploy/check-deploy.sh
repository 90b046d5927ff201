#!/usr/bin/env bash
# Checks what operators install, as CI does after the tests: the alert rules (promtool), the
# units' hardening (systemd-analyze security, at most 2.5), the .deb (built from the binary
# given, installed with dpkg -i on this machine, its units verified, then removed) and
# Deploy/install.sh into a scratch root. Needs root, dpkg, systemd-analyze and promtool.
#
# Usage: bash Deploy/check-deploy.sh [--binary PATH]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

binary="$(swift build --show-bin-path)/govex"
[[ "${1:-}" == "--binary" ]] && binary="$2"
fail() { echo "check-deploy: $*" >&2; exit 1; }
step() { echo "check-deploy: $*" >&2; }

step "alert rules"
promtool check rules Deploy/prometheus/govex-alerts.yml >/dev/null
(cd Deploy/prometheus && promtool test rules govex-alerts.test.yml >/dev/null) || fail "promtool test rules failed"

step "unit hardening"
for unit in systemd/govex-agent.service systemd/govex-hub.service; do
    score="$(systemd-analyze security --offline=true "$unit" 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2)}')"
    systemd-analyze security --offline=true --threshold=25 "$unit" >/dev/null 2>&1 || fail "$unit: exposure $score, above 2.5"
    echo "  $unit: exposure $score" >&2
done

step "the .deb"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
package="$(bash Deploy/build-deb.sh --binary "$binary" --out "$work" --allow-unpackaged-libraries 2>/dev/null)"
dpkg -i "$package" >/dev/null
[[ "$(/usr/bin/govex --version)" == "$("$binary" --version)" ]] || fail "/usr/bin/govex is not the packaged binary"
id govex >/dev/null && id govex-hub >/dev/null || fail "the package did not create the govex and govex-hub users"
[[ "$(stat -c '%a %U' /var/lib/govex)" == "700 govex" ]] || fail "/var/lib/govex is $(stat -c '%a %U' /var/lib/govex), not 700 govex"
[[ "$(stat -c '%a %U' /var/lib/govex-hub)" == "700 govex-hub" ]] || fail "/var/lib/govex-hub is not 700 govex-hub"
[[ -d /etc/govex && -f /usr/share/doc/govex/examples/agent.toml && -f /usr/share/doc/govex/operator-guide.md ]] || fail "files missing"
systemd-analyze verify /lib/systemd/system/govex-agent.service /lib/systemd/system/govex-hub.service || fail "systemd-analyze verify"
dpkg -r govex >/dev/null
[[ ! -e /usr/bin/govex && -d /var/lib/govex ]] || fail "remove must take the binary and keep the data"

step "Deploy/install.sh into a scratch root"
bash Deploy/install.sh --binary "$binary" --root "$work/root" >/dev/null 2>&1 || fail "install.sh failed"
grep -q '^ExecStart=/usr/local/bin/govex agent' "$work/root/etc/systemd/system/govex-agent.service" || fail "install.sh did not point the unit at its binary"
grep -q '^govex-hub:' "$work/root/etc/passwd" || fail "install.sh did not create govex-hub"
step "ok"
