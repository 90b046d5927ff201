# Shared by Deploy/demo.sh, Benchmarks/end-to-end.sh and Benchmarks/diff.sh (source it): throwaway PostgreSQL
# clusters on loopback, a hub and enrolled department agents, all under "$work".
# The caller sets work (a temporary directory) and GOVEX_BIN, and calls govex_cleanup on exit.

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -x "$pg_bin/initdb" ]] || { echo "$0: no PostgreSQL server binaries under /usr/lib/postgresql (run bash Deploy/setup.sh)" >&2; exit 2; }
pids=()
clusters=()
run_as=()
if [[ $(id -u) -eq 0 ]]; then run_as=(runuser -u postgres --); fi  # initdb refuses to run as root

govex_cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for cluster in "${clusters[@]}"; do "${run_as[@]}" "$pg_bin/pg_ctl" -D "$cluster" -m fast stop >/dev/null 2>&1 || true; done
    rm -rf "$work"
}

# GOVEX_BIN, or a release build of govex made now (benchmarks).
release_govex() {
    if [[ -z "${GOVEX_BIN:-}" ]]; then
        swift build -c release --product govex >&2
        GOVEX_BIN="$(swift build -c release --show-bin-path)/govex"
    fi
}

# A benchmark's start: clean up on exit, the govex binary, progress lines on stderr.
start_benchmark() {
    trap govex_cleanup EXIT
    trap 'exit 130' INT TERM
    release_govex
}
progress() { printf '… %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for FILE TEXT SECONDS
    for _ in $(seq 1 $(( $3 * 10 ))); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "$0: timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; return 1
}

# start_cluster NAME PORT [SETTING=VALUE…]: a cluster in $work/NAME listening on 127.0.0.1:PORT
# only (wal_level=logical, fsync off: throwaway data).
start_cluster() {
    local dir="$work/$1" port="$2"
    shift 2
    local settings=(-c listen_addresses=127.0.0.1 -p "$port" -k "$work/socket" -c wal_level=logical -c fsync=off)
    for setting in "$@"; do settings+=(-c "$setting"); done
    mkdir -p "$dir" "$work/socket"
    if [[ ${#run_as[@]} -gt 0 ]]; then
        chown postgres "$dir" "$work/socket"
        chmod 711 "$work"  # postgres may pass through, not list
    fi
    "${run_as[@]}" "$pg_bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
    "${run_as[@]}" "$pg_bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start -o "${settings[*]}" >/dev/null
    clusters+=("$dir")
}

# psql_at PORT DATABASE [psql arguments…]
psql_at() {
    local port="$1" database="$2"
    shift 2
    "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$database" "$@"
}

conninfo_at() { echo "host=127.0.0.1 port=$1 user=postgres dbname=$2"; }

# start_hub CONNINFO CATALOG_FILE: initialises and starts a hub on a free port; sets hub_url.
start_hub() {
    local hub_port
    hub_port="$(free_port)"
    cat > "$work/hub.toml" <<EOF
[hub]
data_dir = "$work/hub"
listen = "127.0.0.1:$hub_port"
database = "$1"
hostnames = ["localhost"]
addresses = ["127.0.0.1"]
EOF
    chmod 640 "$work/hub.toml"   # it may hold the database password: the hub refuses a world-readable one
    "$GOVEX_BIN" hub init --config "$work/hub.toml"
    "$GOVEX_BIN" hub catalog apply "$2" --config "$work/hub.toml"
    "$GOVEX_BIN" hub --config "$work/hub.toml" 2> "$work/hub.log" & pids+=($!)
    wait_for "$work/hub.log" "listening on" 30
    hub_url="https://127.0.0.1:$hub_port"
}

# agent_config NODE CONNINFO SECTIONS: an agent's configuration on stdout.
agent_config() {
    cat <<EOF
[node]
id = "$1"
data_dir = "$work/$1"

[hub]
url = "$hub_url"

[signing]
algorithm = "ed25519"
key = "$work/$1/keys/signing.key"

[source]
conninfo = "$2"
slot = "govex_$1"
publication = "govex"

[batch]
max_age = "200ms"

[metrics]
listen = ""

$3
EOF
}

# enroll NODE: a key pair, a one-time token from the hub, a certificate ($work/NODE.toml).
enroll() {
    local command token ca_hash
    "$GOVEX_BIN" keygen --out "$work/$1/keys" >/dev/null
    command="$("$GOVEX_BIN" hub node add "$1" --config "$work/hub.toml" 2>&1 | grep 'govex enroll')"
    token="$(sed -E 's/.*--token ([^ ]+).*/\1/' <<<"$command")"
    ca_hash="$(sed -E 's/.*--ca-sha256 ([^ ]+).*/\1/' <<<"$command")"
    "$GOVEX_BIN" enroll --hub "$hub_url" --token "$token" --ca-sha256 "$ca_hash" --config "$work/$1.toml"
}

# start_agent NODE: runs the agent of $work/NODE.toml, its log in $work/NODE.log.
start_agent() {
    "$GOVEX_BIN" agent --config "$work/$1.toml" 2> "$work/$1.log" & pids+=($!)
}
