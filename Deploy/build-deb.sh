#!/usr/bin/env bash
# Builds govex_VERSION_amd64.deb: the binary, the systemd units, sysusers.d and tmpfiles.d
# for the users and directories, example configurations and the guides under
# /usr/share/doc/govex. Nothing is enabled or started on install (docs/operator-guide.md).
#
# Usage: bash Deploy/build-deb.sh [--binary PATH] [--out DIR] [--allow-unpackaged-libraries]
#   --binary PATH   package this govex instead of building one (default: a release build
#                   with the Swift runtime linked in: swift build -c release --static-swift-stdlib)
#   --out DIR       where the .deb goes (default: .build/deb)
#   --allow-unpackaged-libraries
#                   package a binary that links libraries no Debian package provides (a
#                   debug build links the Swift toolchain's): for tests on a build machine only
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" out=".build/deb" allow_unpackaged=0
while (($#)); do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --allow-unpackaged-libraries) allow_unpackaged=1; shift ;;
        *) echo "build-deb: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done
if [[ -z "$binary" ]]; then
    swift build -c release --static-swift-stdlib --product govex
    binary="$(swift build -c release --show-bin-path)/govex"
fi
[[ -x "$binary" ]] || { echo "build-deb: $binary is not an executable" >&2; exit 2; }
version="$("$binary" --version)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "build-deb: '$binary --version' printed '$version', not a version" >&2; exit 2; }
architecture="$(dpkg --print-architecture)"

# Runtime dependencies: the Debian package of each shared library the binary names itself
# (DT_NEEDED; those libraries bring their own dependencies).
depends=()
while read -r library; do
    package="$(dpkg -S "$library" 2>/dev/null | head -1 | cut -d: -f1 || true)"
    if [[ -z "$package" ]]; then
        # usrmerge: /lib/x86_64-linux-gnu/… is recorded as /usr/lib/… or the other way round.
        alternate="${library#/usr}"; [[ "$alternate" == "$library" ]] && alternate="/usr$library"
        package="$(dpkg -S "$alternate" 2>/dev/null | head -1 | cut -d: -f1 || true)"
    fi
    if [[ -n "$package" ]]; then
        depends+=("$package")
    elif ((allow_unpackaged)); then
        echo "build-deb: warning: $library is in no Debian package; this .deb runs only where it exists" >&2
    else
        echo "build-deb: $binary links $library, which no Debian package provides; build with --static-swift-stdlib (the default)" >&2
        exit 2
    fi
done < <(objdump -p "$binary" | awk '$1 == "NEEDED" {print $2}' | while read -r soname; do
             ldd "$binary" | awk -v so="$soname" '$1 == so && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 ~ so {print $1}'
         done | sort -u)
depends_line="$(printf '%s\n' "${depends[@]}" | sort -u | paste -sd, - | sed 's/,/, /g')"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -D -m 0755 "$binary" "$root/usr/bin/govex"
# Debug symbols are most of a release binary's size; a crash's backtrace keeps function names.
strip --strip-debug "$root/usr/bin/govex"
install -D -m 0644 systemd/govex-agent.service "$root/lib/systemd/system/govex-agent.service"
install -D -m 0644 systemd/govex-hub.service "$root/lib/systemd/system/govex-hub.service"
install -D -m 0644 Deploy/package/govex.sysusers "$root/usr/lib/sysusers.d/govex.conf"
install -D -m 0644 Deploy/package/govex.tmpfiles "$root/usr/lib/tmpfiles.d/govex.conf"
doc="$root/usr/share/doc/govex"
install -d -m 0755 "$doc/examples"
for guide in README.md CHANGELOG.md docs/operator-guide.md docs/dba-guide.md docs/security.md docs/api.md docs/sharing.md \
             docs/one-source.md docs/batch-format.md docs/diff.md; do
    install -m 0644 "$guide" "$doc/$(basename "$guide")"
done
for example in agent hub catalog; do
    install -m 0644 "Deploy/$example.example.toml" "$doc/examples/$example.toml"
done
install -m 0644 Deploy/prometheus/govex-alerts.yml "$doc/examples/govex-alerts.yml"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: govex
Files: *
Copyright: the govex developers
License: see the project repository
COPYRIGHT

install -d -m 0755 "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: govex
Version: $version
Architecture: $architecture
Maintainer: govex developers <govex@localhost>
Section: net
Priority: optional
Depends: systemd, $depends_line
Installed-Size: $(du -sk "$root" | cut -f1)
Description: government data-exchange daemon: department agents and the central hub
 An agent on each department's front-end processor captures changes from its
 PostgreSQL tables (logical decoding), signs and compresses them into batches and
 pushes them to the hub over mutual TLS; the hub verifies, merges ("one source, one
 number") and delivers them to subscribing departments under the sharing rules.
CONTROL
for script in postinst prerm postrm; do install -m 0755 "Deploy/package/$script" "$root/DEBIAN/$script"; done
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | xargs -0 md5sum > DEBIAN/md5sums)

mkdir -p "$out"
package="$out/govex_${version}_${architecture}.deb"
dpkg-deb --root-owner-group --build "$root" "$package" >/dev/null
echo "$package"
