#!/usr/bin/env bash
# Follows docs/operator-guide.md word for word on this machine: installs the package, sets up
# the hub and two department agents (gongan publishes its residents, minzheng receives them)
# by running the guide's own command blocks, then checks that a change at gongan arrives at
# minzheng and that `govex status` says ok. The guide's prose steps (edit a file, the DBA's
# work, what systemd does) are done here, each marked "prose:". A guide that drifts from
# the package fails here.
#
# It CHANGES THIS MACHINE: before and after the check it drops and recreates Debian's
# PostgreSQL cluster on port 5432, purges the govex package, deletes the govex and govex-hub
# users, /etc/govex and /var/lib/govex*. Run it on a throwaway machine only (CI's).
# Usage: GOVEX_CI_MACHINE=1 bash Deploy/check-guide.sh PACKAGE.deb
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${GOVEX_CI_MACHINE:-}" == 1 ]] || { echo "check-guide: this changes the machine (port 5432, users, /etc/govex); run it on a throwaway one with GOVEX_CI_MACHINE=1" >&2; exit 2; }
[[ -f "${1:-}" ]] || { echo "check-guide: usage: GOVEX_CI_MACHINE=1 bash Deploy/check-guide.sh PACKAGE.deb" >&2; exit 2; }
package="$(realpath "$1")"
guide="$PWD/docs/operator-guide.md"
work="$(mktemp -d)"
chmod 755 "$work"
pids=()
version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
cluster="$version main"
# What this check (or an earlier run of it) leaves on the machine, taken away: the guide's
# `createuser govex-hub` fails on a machine where the role exists, so every run starts from
# what apt leaves, and ends by leaving the machine so again.
reset_machine() {
    pkill -KILL -u govex 2>/dev/null || true
    pkill -KILL -u govex-hub 2>/dev/null || true
    if pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$cluster"; then pg_dropcluster --stop $cluster; fi
    pg_createcluster $cluster >/dev/null
    if dpkg-query -W -f '${Status}' govex 2>/dev/null | grep -q installed; then dpkg --purge govex >/dev/null 2>&1; fi
    for user in govex govex-hub; do
        if id -u "$user" >/dev/null 2>&1; then userdel "$user"; fi
        if getent group "$user" >/dev/null; then groupdel "$user"; fi
    done
    rm -rf /etc/govex /var/lib/govex /var/lib/govex-hub /var/lib/govex-minzheng /root/govex-token /root/govex-token-minzheng
}
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    reset_machine
    rm -rf "$work"
}
trap cleanup EXIT
reset_machine
# The services' users run commands here: from a directory they may enter.
cd /
fail() { echo "check-guide: $*" >&2; for log in "$work"/*.log; do [[ -f "$log" ]] && { echo "== $log" >&2; tail -20 "$log" >&2; }; done; exit 1; }
prose() { echo "check-guide: prose: $*" >&2; }

# The Nth ```sh block (from 1) of the section headed "## $1".
block() {
    awk -v heading="## $1" -v want="$2" '
        $0 == heading {on = 1; next}
        /^## / {on = 0}
        on && /^```sh$/ {n++; inside = 1; next}
        on && inside && /^```$/ {inside = 0; next}
        on && inside && n == want {print}' "$guide"
}
# What systemd does for `systemctl enable --now UNIT`: the unit's ExecStart as its User, and
# (Type=notify) waiting until it is up. CONFIG replaces the configuration path (a second agent).
start_unit() {
    local unit="/lib/systemd/system/$1.service" config="${2:-}" wait_for="$3"
    local user exec_start
    user="$(sed -n 's/^User=//p' "$unit")"
    exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
    [[ -n "$config" ]] && exec_start="$(sed "s|--config [^ ]*|--config $config|" <<< "$exec_start")"
    local log="$work/$1$( [[ -n "$config" ]] && basename "$config" .toml).log"
    runuser -u "$user" -- $exec_start 2> "$log" &
    pids+=($!)
    for _ in $(seq 1 300); do grep -q "$wait_for" "$log" && return 0; sleep 0.2; done
    fail "$1 did not come up ($wait_for)"
}
# Runs a block as the guide shows it, line by line, after `sed` expressions (for the second
# agent); the first line that fails fails the check. `govex status` may say "warning" (1).
run_block() {
    local section="$1" index="$2" text line status
    text="$(block "$section" "$index")"
    [[ -n "$text" ]] || fail "the guide has no block $index under '## $section'"
    shift 2
    for expression in "$@"; do text="$(sed "$expression" <<< "$text")"; done
    while IFS= read -r line; do
        [[ -z "${line// }" ]] && continue
        echo "check-guide: guide> $line" >&2
        status=0
        eval "$line" || status=$?
        if ((status == 1)) && [[ "$line" == *"govex status"* ]]; then status=0; fi
        ((status == 0)) || fail "'$line' (## $section, block $index) failed with exit status $status"
    done <<< "$text"
}
# The DBA's part (docs/dba-guide.md): run, as a superuser, the SQL `govex check` prints.
dba_fixes() {
    local config="$1" database="$2"
    for _ in 1 2 3; do
        runuser -u govex -- govex check --json --config "$config" 2>/dev/null | tail -1 > "$work/check.json" || true
        python3 -c 'import json,sys; [print(f["fix"] + ";") for f in json.load(open(sys.argv[1]))["findings"] if f.get("fix")]' "$work/check.json" > "$work/fixes.sql"
        [[ -s "$work/fixes.sql" ]] || return 0
        runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d "$database" -f "$work/fixes.sql" >/dev/null
    done
}
systemctl() {  # the guide's `systemctl enable --now UNIT`, without systemd
    [[ "$1 $2" == "enable --now" ]] || fail "the guide runs systemctl $*, which this check does not know"
    case "$3" in
        govex-hub) start_unit govex-hub "" "listening on" ;;
        govex-agent) start_unit govex-agent "${AGENT_CONFIG:-}" "${AGENT_READY:-starting:}" ;;
    esac
}

echo "check-guide: ## Install the package" >&2
named="$(block "Install the package" 1 | grep -o '\./govex_[^ ]*\.deb')"
[[ "$named" == "./$(basename "$package")" ]] || fail "the guide installs $named, the package is $(basename "$package"): update the guide"
run_block "Install the package" 1 "s|$named|$package|"

echo "check-guide: ## Install the hub" >&2
prose "apt started PostgreSQL (systemd would); the agents' DBA sets wal_level = logical (docs/dba-guide.md)"
pg_ctlcluster $cluster start
runuser -u postgres -- psql -q -c "ALTER SYSTEM SET wal_level = logical"
pg_ctlcluster $cluster restart
run_block "Install the hub" 1
prose "edit /etc/govex/hub.toml: hostnames and addresses"
sed -i 's|^hostnames = .*|hostnames = ["localhost"]|; s|^addresses = .*|addresses = ["127.0.0.1"]|; s|^listen = "0.0.0.0:8443"|listen = "127.0.0.1:8443"|' /etc/govex/hub.toml
run_block "Install the hub" 2

# One agent per machine in the guide: the second one here gets its own paths.
for department in gongan minzheng; do
    echo "check-guide: ## Install a department agent ($department)" >&2
    config=/etc/govex/agent.toml data=/var/lib/govex subs=()
    if [[ "$department" == minzheng ]]; then
        config=/etc/govex/minzheng.toml data=/var/lib/govex-minzheng
        prose "minzheng's machine would have /var/lib/govex from the package; here it is /var/lib/govex-minzheng"
        install -d -m 0700 -o govex -g govex "$data"
        subs=("s|/etc/govex/agent.toml|$config|g" "s|/var/lib/govex/|$data/|g" "s|node add gongan|node add minzheng|" "s|/root/govex-token|/root/govex-token-minzheng|g")
    fi
    export AGENT_CONFIG="$([[ "$department" == minzheng ]] && echo "$config" || true)"
    # READY=1: a publishing agent once its slot exists, a receiving one once it runs.
    export AGENT_READY="$([[ "$department" == gongan ]] && echo "streaming" || echo "starting:")"
    run_block "Install a department agent" 1 "${subs[@]}"
    prose "edit $config: node id, conninfo, [hub] url, what it publishes and receives"
    python3 - "$config" "$department" "$data" <<'PY'
import re, sys
path, node, data = sys.argv[1:]
text = open(path).read()
text = text.replace('id = "gongan"', f'id = "{node}"').replace('/var/lib/govex', data)
text = re.sub(r'conninfo = "[^"]*"', f'conninfo = "host=/run/postgresql dbname={node} user=govex"', text)
text = re.sub(r'url = "[^"]*"', 'url = "https://localhost:8443"', text)
text = re.sub(r'slot = "govex"', f'slot = "govex_{node}"', text)
blocks = re.split(r'(?m)^(?=\[\[(?:publish|subscribe)\]\]|\[apply\]|# A resource of another)', text)
head, rest = blocks[0], blocks[1:]
keep = [b for b in rest if b.startswith('[apply]')]
if node == "gongan":
    keep = [b for b in rest if b.startswith('[[publish]]')] + keep
else:
    keep = ['[[subscribe]]\nresource = "GA-RK-0001"\ntable = "shared.residents"\npurpose = "check residence for housing subsidy applications"\n\n'] + keep
open(path, "w").write(head + "".join(keep))
PY
    prose "the DBA prepares $department's database (docs/dba-guide.md)"
    runuser -u postgres -- createuser --replication govex 2>/dev/null || true
    runuser -u postgres -- createdb -O govex "$department"
    if [[ "$department" == gongan ]]; then
        runuser -u govex -- psql -q -d gongan -c "CREATE TABLE residents (id_number text PRIMARY KEY, name text, birth_date date, address text, officer_note text)" \
            -c "CREATE TABLE case_files (case_id text PRIMARY KEY, summary text)" -c "CREATE PUBLICATION govex FOR TABLE residents" \
            -c "INSERT INTO residents VALUES ('110101198001010034', '李 明', '1980-01-01', '北京市东城区', 'internal')"
    fi
    run_block "Install a department agent" 2 "${subs[@]}" > "$work/node-add-$department.out" 2>&1
    token="$(grep -m1 '^gvx_' "$work/node-add-$department.out")"
    hash="$(grep -o -- '--ca-sha256 [0-9a-f]*' "$work/node-add-$department.out" | head -1 | cut -d' ' -f2)"
    [[ -n "$token" && -n "$hash" ]] || fail "hub node add did not print a token and a CA hash"
    prose "the token travels to the department and is kept in a root-only file"
    token_file="$([[ "$department" == minzheng ]] && echo /root/govex-token-minzheng || echo /root/govex-token)"
    (umask 077 && echo "$token" > "$token_file")
    run_block "Install a department agent" 3 "${subs[@]}" "s|https://hub.exchange.example.gov.cn:8443|https://localhost:8443|" "s|HASH|$hash|"
    prose "the DBA runs, as a superuser, the SQL govex check prints (the subscribed table, grants)"
    dba_fixes "$config" "$department"
    run_block "Install a department agent" 4 "${subs[@]}"
done

echo "check-guide: ## Subscribing and receiving (minzheng)" >&2
run_block "Subscribing and receiving" 1 "s|/etc/govex/agent.toml|/etc/govex/minzheng.toml|g"

echo "check-guide: the exchange" >&2
runuser -u postgres -- psql -q -d gongan -c "INSERT INTO residents VALUES ('110105202406180017', '张小明', '2024-06-18', '北京市朝阳区', 'x')" \
    -c "UPDATE residents SET address = '上海市浦东新区' WHERE id_number = '110101198001010034'"
fingerprint() { runuser -u postgres -- psql -At -d "$1" -c "SELECT string_agg(concat_ws('|', id_number, name, birth_date, address), ',' ORDER BY id_number) FROM $2"; }
for _ in $(seq 1 300); do
    [[ "$(fingerprint gongan residents)" == "$(fingerprint minzheng shared.residents)" ]] && break
    sleep 0.2
done
[[ "$(fingerprint gongan residents)" == "$(fingerprint minzheng shared.residents)" ]] || fail "minzheng's table did not become gongan's"
# The agents write their status every 5 s: give the one that just started applying a moment.
for config in /etc/govex/agent.toml /etc/govex/minzheng.toml; do
    for _ in $(seq 1 30); do runuser -u govex -- govex status --config "$config" > "$work/status.txt" && break; sleep 0.5; done
    cat "$work/status.txt" >&2
    runuser -u govex -- govex status --config "$config" >/dev/null || fail "govex status for $config is not ok"
done
runuser -u govex-hub -- govex hub status --config /etc/govex/hub.toml >&2 || true
echo "check-guide: ok: the guide, followed word for word, has a hub and two agents exchanging data" >&2
