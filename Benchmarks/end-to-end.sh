#!/usr/bin/env bash
# End to end on one box ([5/6]): ROWS inserts, then ROWS updates, committed in department
# A; the time until all of them are applied in department B — through govex (A's agent
# captures, compresses and signs; the hub verifies, stores, routes and signs; B's agent
# verifies and applies) and, side by side in the same run, through PostgreSQL's native
# logical replication (a publication in A's cluster, a subscription in B's).
#
# Usage: bash Benchmarks/end-to-end.sh [ROWS]      (default 1000000)
#   GOVEX_BIN=/path/to/govex   use this binary (default: swift build -c release)
# Three throwaway clusters on loopback, removed on exit: department A's, department B's and
# the hub's (the hub is a central server of its own, not a tenant of a department's
# database; in A's cluster, A's walsender would also have to read all of the hub's WAL).
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
[[ "$rows" =~ ^[0-9]+$ && "$rows" -gt 0 ]] || { echo "usage: bash Benchmarks/end-to-end.sh [ROWS]" >&2; exit 2; }
work="$(mktemp -d /tmp/govex-e2e-XXXXXX)"
source Deploy/lib.sh
start_benchmark

a_port="$(free_port)"
b_port="$(free_port)"
hub_port="$(free_port)"
start_cluster a "$a_port" max_wal_senders=20 max_replication_slots=20
start_cluster b "$b_port" max_wal_senders=20 max_replication_slots=20 max_logical_replication_workers=8
start_cluster hub "$hub_port"
for db in gongan native_source; do psql_at "$a_port" postgres -c "CREATE DATABASE $db"; done
psql_at "$hub_port" postgres -c "CREATE DATABASE hub"
for db in minzheng native_target; do psql_at "$b_port" postgres -c "CREATE DATABASE $db"; done

# About 120 bytes a row.
table='CREATE TABLE bench (id bigint PRIMARY KEY, name text NOT NULL, address text, amount numeric(12,2),
                          birth_date date, status int2 NOT NULL, updated_at timestamptz NOT NULL)'
insert="INSERT INTO bench SELECT g, '姓名 ' || g, '北京市朝阳区建国路 ' || g || ' 号 ' || repeat('x', 40), g * 0.01,
               date '1950-01-01' + (g % 25000), 1, now() FROM generate_series(1, $rows) g"
update="UPDATE bench SET status = 2, amount = amount + 1, updated_at = now()"
for target in "$a_port gongan" "$a_port native_source" "$b_port minzheng" "$b_port native_target"; do
    psql_at $target -c "$table"
done

# Seconds from issuing STATEMENT at A until B's table holds `rows` rows matching CONDITION.
# Polls every 0.2 s (a count over B's table: the same small cost for both ways).
timed_until() {  # timed_until A_DATABASE B_DATABASE STATEMENT CONDITION LABEL
    local start now count elapsed polls=0
    start="$(date +%s.%N)"
    psql_at "$a_port" "$1" -c "$3"
    while true; do
        count="$(psql_at "$b_port" "$2" -At -c "SELECT count(*) FROM bench WHERE $4")"
        now="$(date +%s.%N)"
        elapsed="$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.3f", b - a }')"
        [[ "$count" -ge "$rows" ]] && break
        (( polls++ % 10 == 0 )) && progress "$5: $count of $rows applied in B after ${elapsed%.*} s"
        (( ${elapsed%.*} < 1800 )) || { echo "end-to-end: $5 did not finish in 30 minutes" >&2; tail -20 "$work"/*.log >&2; exit 1; }
        sleep 0.2
    done
    echo "$elapsed"
}

# One row through the whole way first: slot made, subscription backfilled, both agents live.
warm_up() {  # warm_up A_DATABASE B_DATABASE
    psql_at "$a_port" "$1" -c "INSERT INTO bench VALUES (0, 'warm-up', NULL, NULL, NULL, 0, now())"
    for _ in $(seq 1 600); do
        [[ "$(psql_at "$b_port" "$2" -At -c "SELECT count(*) FROM bench WHERE id = 0")" == 1 ]] && break
        sleep 0.1
    done
    psql_at "$a_port" "$1" -c "DELETE FROM bench WHERE id = 0"
    for _ in $(seq 1 600); do
        [[ "$(psql_at "$b_port" "$2" -At -c "SELECT count(*) FROM bench")" == 0 ]] && return 0
        sleep 0.1
    done
    echo "end-to-end: the warm-up row did not reach $2:" >&2; tail -20 "$work"/*.log >&2; exit 1
}

progress "native logical replication: publication in A's cluster, subscription in B's"
psql_at "$a_port" native_source -c "CREATE PUBLICATION bench FOR TABLE bench"
psql_at "$b_port" native_target -c "CREATE SUBSCRIPTION bench CONNECTION '$(conninfo_at "$a_port" native_source)' PUBLICATION bench"
for _ in $(seq 1 100); do
    [[ "$(psql_at "$b_port" native_target -At -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" == 0 ]] && break
    sleep 0.1
done
warm_up native_source native_target
native_inserts="$(timed_until native_source native_target "$insert" "true" "native inserts")"
native_updates="$(timed_until native_source native_target "$update" "status = 2" "native updates")"
psql_at "$b_port" native_target -c "DROP SUBSCRIPTION bench"

progress "govex: a hub, gongan publishing bench, minzheng subscribed"
psql_at "$a_port" gongan -c "CREATE PUBLICATION govex FOR TABLE bench"
cat > "$work/catalog.toml" <<'EOF'
[[resource]]
code = "BENCH"
name = "benchmark rows"
provider = "gongan"
share = "unconditional"
key = ["id"]
columns = ["id", "name", "address", "amount", "birth_date", "status", "updated_at"]
EOF
start_hub "$(conninfo_at "$hub_port" hub)" "$work/catalog.toml" >/dev/null
agent_config gongan "$(conninfo_at "$a_port" gongan)" '[[publish]]
resource = "BENCH"
share = "unconditional"
table = "public.bench"
key = ["id"]' > "$work/gongan.toml"
agent_config minzheng "$(conninfo_at "$b_port" minzheng)" '[[subscribe]]
resource = "BENCH"
table = "public.bench"
purpose = "end-to-end benchmark"' > "$work/minzheng.toml"
for node in gongan minzheng; do enroll "$node" >/dev/null; done
"$GOVEX_BIN" subscribe --resource BENCH --config "$work/minzheng.toml" >/dev/null
start_agent gongan
start_agent minzheng
warm_up gongan minzheng
govex_inserts="$(timed_until gongan minzheng "$insert" "true" "govex inserts")"
govex_updates="$(timed_until gongan minzheng "$update" "status = 2" "govex updates")"
# The hub writes its copy (for backfill) and golden records off the delivery path, when pushes
# pause: how long after B had everything the hub's merge queue was empty too.
merge_start="$(date +%s.%N)"
while [[ "$(psql_at "$hub_port" hub -At -c "SELECT count(*) FROM govex.golden_queue")" != 0 ]]; do sleep 0.2; done
merge_lag="$(awk -v a="$merge_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"

echo
echo "govex end to end: $rows inserts, then $rows updates, A → B, $(nproc) cores, PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}')"
printf '%-10s %12s %12s %14s %14s %8s\n' "" "govex s" "native s" "govex rows/s" "native rows/s" "ratio"
for phase in inserts updates; do
    g="govex_$phase" n="native_$phase"
    awk -v p="$phase" -v g="${!g}" -v n="${!n}" -v r="$rows" 'BEGIN { printf "%-10s %12.2f %12.2f %14.0f %14.0f %7.2f×\n", p, g, n, r / g, r / n, n / g }'
done
echo "(ratio = native time / govex time; govex also signs, compresses, stores at the hub, verifies twice and keeps an audit trail)"
echo "the hub's copy and golden records caught up ${merge_lag} s after B had applied the updates (merged off the delivery path)"
