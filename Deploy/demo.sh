#!/usr/bin/env bash
# The local demo: a throwaway PostgreSQL cluster, a hub and two department agents on
# loopback only. 公安 (gongan) publishes its residents table; 民政 (minzheng) subscribes;
# changes committed at gongan arrive in minzheng's table through the hub over mutual TLS.
#
# Usage: bash Deploy/demo.sh
#   GOVEX_BIN=/path/to/govex   use this binary instead of installing and building
#   DEMO_WAIT=0                exit when the demo has shown the exchange (default: wait for Ctrl-C when on a terminal)
# Everything lives in one temporary directory, removed on exit and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${GOVEX_BIN:-}" ]]; then
    bash Deploy/setup.sh
    GOVEX_BIN="$(swift build --show-bin-path)/govex"
fi
[[ -x "$GOVEX_BIN" ]] || { echo "demo: $GOVEX_BIN is not an executable govex" >&2; exit 2; }
wait_at_end="${DEMO_WAIT:-}"
[[ -n "$wait_at_end" ]] || { [[ -t 0 ]] && wait_at_end=1 || wait_at_end=0; }

work="$(mktemp -d /tmp/govex-demo-XXXXXX)"
source Deploy/lib.sh
cleanup() {
    trap - EXIT INT TERM
    govex_cleanup
    echo "demo: stopped and cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }

say "PostgreSQL: a temporary cluster on 127.0.0.1 (wal_level=logical)"
pg_port="$(free_port)"
start_cluster pg "$pg_port"
psql() { psql_at "$pg_port" "$@"; }
for db in hub gongan minzheng; do psql postgres -c "CREATE DATABASE $db"; done
conninfo() { conninfo_at "$pg_port" "$1"; }
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port: databases hub, gongan, minzheng"

say "公安 (gongan): the residents table it shares"
psql gongan <<'SQL'
CREATE TABLE residents (
    id_number   text PRIMARY KEY,
    name        text NOT NULL,
    gender      text,
    birth_date  date,
    address     text,
    officer_note text,               -- internal: never shared
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO residents (id_number, name, gender, birth_date, address, officer_note) VALUES
    ('11010519491231002X', '张秀英', '女', '1949-12-31', '北京市朝阳区建国路 88 号', 'internal'),
    ('110101198001010034', '李建国', '男', '1980-01-01', '北京市东城区东华门街道 12 号', 'internal'),
    ('110102199207150023', '王芳',   '女', '1992-07-15', '北京市西城区金融街 7 号', 'internal');
CREATE PUBLICATION govex FOR TABLE residents;
SQL
psql minzheng -c "CREATE SCHEMA shared" -c "CREATE TABLE shared.residents (id_number text PRIMARY KEY, name text, gender text, birth_date date, address text)"

say "Hub: CA, signing key, TLS certificate, schema; catalog; HTTPS on 127.0.0.1"
cat > "$work/catalog.toml" <<'EOF'
[[resource]]
code = "GA-RK-0001"
name = "常住人口基本信息 (registered residents)"
provider = "gongan"
share = "unconditional"
key = ["id_number"]
columns = ["id_number", "name", "gender", "birth_date", "address"]
update_frequency = "realtime"
EOF
start_hub "$(conninfo hub)" "$work/catalog.toml"

agent_config gongan "$(conninfo gongan)" '[[publish]]
resource = "GA-RK-0001"
share = "unconditional"
table = "public.residents"
key = ["id_number"]
exclude = ["officer_note", "updated_at"]' > "$work/gongan.toml"
agent_config minzheng "$(conninfo minzheng)" '[[subscribe]]
resource = "GA-RK-0001"
table = "shared.residents"
purpose = "verify residence for marriage registration (婚姻登记核验)"' > "$work/minzheng.toml"

say "Enrollment: one-time tokens, keys, certificates"
for node in gongan minzheng; do enroll "$node"; done

say "民政 (minzheng) subscribes to GA-RK-0001"
"$GOVEX_BIN" check --config "$work/minzheng.toml" | tail -3
"$GOVEX_BIN" subscribe --resource GA-RK-0001 --config "$work/minzheng.toml"

say "Agents running (logs in $work/*.log)"
start_agent gongan
start_agent minzheng

show_minzheng() { psql minzheng -c "SELECT id_number, name, gender, birth_date, address FROM shared.residents ORDER BY id_number"; }
fingerprint() { psql "$1" -At -c "SELECT count(*) || ':' || coalesce(md5(string_agg(concat_ws('|', id_number, name, gender, birth_date, address), ',' ORDER BY id_number)), '') FROM $2"; }
wait_until_equal() {
    for _ in $(seq 1 300); do
        [[ "$(fingerprint gongan residents)" == "$(fingerprint minzheng shared.residents)" ]] && return 0
        sleep 0.2
    done
    echo "demo: minzheng did not catch up; logs:" >&2; tail -5 "$work"/*.log >&2; return 1
}
wait_until_equal
say "The initial snapshot arrived at minzheng (officer_note stayed at gongan)"
show_minzheng

say "gongan commits changes: a newborn, a move, a correction, a deregistration"
psql gongan <<'SQL'
INSERT INTO residents (id_number, name, gender, birth_date, address) VALUES ('110105202406180017', '张小明', '男', '2024-06-18', '北京市朝阳区建国路 88 号');
UPDATE residents SET address = '上海市浦东新区世纪大道 100 号', updated_at = now() WHERE id_number = '110101198001010034';
UPDATE residents SET name = '王 芳' WHERE id_number = '110102199207150023';
DELETE FROM residents WHERE id_number = '11010519491231002X';
SQL
wait_until_equal
say "The changes arrived at minzheng, verified (hub and provider signatures) and applied"
show_minzheng
"$GOVEX_BIN" subscriptions --config "$work/minzheng.toml"
echo
echo "demo: the exchange works: gongan and minzheng hold the same rows"

if [[ "$wait_at_end" == 1 ]]; then
    echo "demo: try it yourself, then press Ctrl-C to stop:"
    echo "  $pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -d gongan -c \"UPDATE residents SET address = '…' WHERE id_number = '110105202406180017'\""
    echo "  $pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -d minzheng -c 'TABLE shared.residents'"
    while true; do sleep 1; done
fi
