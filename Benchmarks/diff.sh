#!/usr/bin/env bash
# `govex diff` ([6/6]) side by side with its references, same run, same two databases:
#   data-diff 0.11.2 (PyPI, in a virtual environment), the naive way (\copy both tables in
#   key order in parallel, then diff), and the limit (a hash sum of every row, both sides
#   in parallel: equality only).
# Tables of ROWS rows (~120 bytes): an integer key (like pgbench_accounts) and an
# 18-character text key (citizen ID numbers, COLLATE "C"), with 0, 0.01 % and 1 % of the
# rows changed on the right side (a third updated, a third deleted, a third inserted).
#
# Usage: bash Benchmarks/diff.sh [ROWS …]              (default 1000000)
#   GOVEX_BIN=/path/to/govex   use this binary (default: swift build -c release)
#   DATA_DIFF=/path/to/data-diff  use this data-diff (default: a venv under $TMPDIR, made once)
#   SKIP_DATA_DIFF=1           leave data-diff out (it takes minutes on 10,000,000 rows)
#   KINDS="integer text"       which key kinds to run
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-1000000}")
if [[ -z "${SKIP_DATA_DIFF:-}" && -z "${DATA_DIFF:-}" ]]; then
    venv="${TMPDIR:-/tmp}/govex-data-diff-venv"
    if [[ ! -x "$venv/bin/data-diff" ]]; then
        python3 -m venv "$venv" || { echo "diff.sh: python3 -m venv failed: apt-get install python3-venv" >&2; exit 2; }
        # data-diff 0.11.2 installs only with these pinned beside it.
        "$venv/bin/pip" install -q "data-diff==0.11.2" "dbt-core>=1.7,<1.8" "pydantic<2" psycopg2-binary >&2
    fi
    DATA_DIFF="$venv/bin/data-diff"
fi
work="$(mktemp -d /tmp/govex-diffbench-XXXXXX)"
source Deploy/lib.sh
start_benchmark

port="$(free_port)"
start_cluster pg "$port" shared_buffers=1GB max_wal_size=8GB
for db in leftdb rightdb; do psql_at "$port" postgres -c "CREATE DATABASE $db"; done
uri() { echo "postgresql://postgres:unused@127.0.0.1:$port/$1"; }  # data-diff wants a password even under trust
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# make_tables KIND ROWS: the same rows on both sides.
make_tables() {
    local kind="$1" rows="$2" ddl insert
    if [[ "$kind" == integer ]]; then
        ddl="CREATE TABLE bench (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84))"
        insert="INSERT INTO bench SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, $rows) g"
        key=aid; columns="bid,abalance,filler"; change_column=abalance
    else
        ddl="CREATE TABLE bench (id_number text COLLATE \"C\" PRIMARY KEY, name text NOT NULL, amount numeric(12,2), birth date, filler text)"
        # 17 digits from a scrambled counter, and a check character (0-9 or X): keys in no relation to insertion order.
        insert="INSERT INTO bench SELECT lpad(((g::bigint * 7919) % 100000000000000000)::text, 17, '0') || substr('0123456789X', g % 11 + 1, 1),
                       '姓名' || g, g % 100000 / 100.0, date '1950-01-01' + g % 25000, repeat('x', 40) FROM generate_series(1, $rows) g"
        key=id_number; columns="name,amount,birth,filler"; change_column=amount
    fi
    for db in leftdb rightdb; do psql_at "$port" "$db" -c "DROP TABLE IF EXISTS bench" -c "$ddl" -c "$insert" -c "VACUUM ANALYZE bench" & done
    wait
}

# mutate FRACTION SEED: on the right side, a third of FRACTION·ROWS rows updated, a third deleted, a third inserted.
mutate() {
    psql_at "$port" rightdb <<SQL
UPDATE bench SET $change_column = $change_column + 1 WHERE ctid IN (SELECT ctid FROM bench TABLESAMPLE BERNOULLI ($(awk -v f="$1" 'BEGIN { print f * 100 / 3 }')) REPEATABLE ($2));
DELETE FROM bench WHERE ctid IN (SELECT ctid FROM bench TABLESAMPLE BERNOULLI ($(awk -v f="$1" 'BEGIN { print f * 100 / 3 }')) REPEATABLE ($(( $2 + 1 ))));
VACUUM ANALYZE bench;
SQL
    # Inserts: copies of sampled rows under keys out of the existing range.
    if [[ "$kind" == integer ]]; then
        psql_at "$port" rightdb -c "INSERT INTO bench SELECT aid + 2000000000, bid, abalance, filler FROM bench TABLESAMPLE BERNOULLI ($(awk -v f="$1" 'BEGIN { print f * 100 / 3 }')) REPEATABLE ($2)
                                    WHERE aid < 100000000 ON CONFLICT DO NOTHING"
    else
        psql_at "$port" rightdb -c "INSERT INTO bench SELECT 'N' || substr(id_number, 2), name, amount, birth, filler FROM bench TABLESAMPLE BERNOULLI ($(awk -v f="$1" 'BEGIN { print f * 100 / 3 }')) REPEATABLE ($2)
                                    WHERE id_number NOT LIKE 'N%' ON CONFLICT DO NOTHING"
    fi
    psql_at "$port" rightdb -c "VACUUM ANALYZE bench"
}

run_govex() {
    local start
    start="$(now)"
    local timer=()
    [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f "%M" -o "$work/govex.rss") || echo 0 > "$work/govex.rss"  # peak RSS needs apt-get install time
    "${timer[@]}" "$GOVEX_BIN" diff --left "$(conninfo_at "$port" leftdb)" --right "$(conninfo_at "$port" rightdb)" --table bench --key "$key" --json --quiet \
        > "$work/govex.json" || [[ $? == 1 ]]
    govex_s="$(elapsed "$start")"
    python3 - "$work/govex.json" > "$work/govex.keys" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        for d in json.loads(line)["differences"]:
            print(list(d["key"].values())[0], d["kind"])
PY
    govex_rss="$(tail -1 "$work/govex.rss")"
    govex_bytes="$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][0]["bytes_moved"])' "$work/govex.json")"
}

run_data_diff() {
    local start
    [[ -n "${SKIP_DATA_DIFF:-}" ]] && { data_diff_s=nan; return; }
    start="$(now)"
    local column_args=()
    for column in ${columns//,/ }; do column_args+=(-c "$column"); done
    COLUMNS=100000 "$DATA_DIFF" "$(uri leftdb)" bench "$(uri rightdb)" bench -k "$key" "${column_args[@]}" --json --no-tracking \
        > "$work/data-diff.json" 2> "$work/data-diff.log" || true
    data_diff_s="$(elapsed "$start")"
    # One line per differing row and side ("-" left, "+" right): a key on both sides changed.
    python3 - "$work/data-diff.json" > "$work/data-diff.keys" <<'PY'
import json, sys
sides = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("["):
        continue
    sign, row = json.loads(line)
    sides.setdefault(str(row[0]).strip(), set()).add(sign)
for key, signs in sides.items():
    print(key, "changed" if len(signs) == 2 else ("only_left" if "-" in signs else "only_right"))
PY
}

run_naive() {
    local start
    start="$(now)"
    psql_at "$port" leftdb -c "\\copy (SELECT * FROM bench ORDER BY $key) TO '$work/left.copy'" &
    psql_at "$port" rightdb -c "\\copy (SELECT * FROM bench ORDER BY $key) TO '$work/right.copy'" &
    wait
    diff "$work/left.copy" "$work/right.copy" > /dev/null || true
    naive_s="$(elapsed "$start")"
    rm -f "$work/left.copy" "$work/right.copy"
}

run_limit() {
    local start
    start="$(now)"
    for db in leftdb rightdb; do psql_at "$port" "$db" -At -c "SELECT sum(hashtextextended(t::text, 0)) FROM bench t" > /dev/null & done
    wait
    limit_s="$(elapsed "$start")"
}

results="$work/results"
: > "$results"
for rows in "${sizes[@]}"; do
    for kind in ${KINDS:-integer text}; do
        progress "$rows rows, $kind key: making both tables"
        make_tables "$kind" "$rows"
        done_fraction=0
        for fraction in 0 0.0001 0.01; do
            if [[ "$fraction" != 0 ]]; then
                # Changes add up: the 1 % case is the 0.01 % one and 0.99 % more.
                progress "$rows rows, $kind key: changing $fraction of the rows on the right"
                mutate "$(awk -v f="$fraction" -v d="$done_fraction" 'BEGIN { print f - d }')" "$(( ${#done_fraction} * 10 ))"
                done_fraction="$fraction"
            fi
            progress "$rows rows, $kind key, $fraction changed: govex, data-diff, naive, limit"
            run_govex; run_data_diff; run_naive; run_limit
            same="n/a"
            if [[ -z "${SKIP_DATA_DIFF:-}" ]]; then
                if diff <(sort "$work/govex.keys") <(sort "$work/data-diff.keys") > "$work/keys.diff"; then same=yes; else same="NO ($(wc -l < "$work/keys.diff") lines differ)"; fi
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rows" "$kind" "$fraction" "$(wc -l < "$work/govex.keys")" "$govex_s" "$data_diff_s" \
                "$naive_s" "$limit_s" "$govex_bytes" "$same" "$govex_rss" >> "$results"
            progress "result: $(tail -1 "$results" | tr '\t' ' ')"
        done
    done
done

echo
echo "govex diff vs data-diff 0.11.2, naive \\copy + diff, and the hash-sum limit — $(nproc) cores, PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'), both databases in one cluster"
printf '%-9s %-7s %-7s %6s %8s %9s %8s %8s %10s %10s %10s %10s %8s  %s\n' rows key changed diffs "govex s" "data-diff" "naive s" "limit s" \
    "dd/govex" "naive/gvx" "gvx/limit" "MB moved" "RSS MB" "same keys as data-diff"
while IFS=$'\t' read -r rows kind fraction diffs g d n l bytes same rss; do
    awk -v r="$rows" -v k="$kind" -v f="$fraction" -v c="$diffs" -v g="$g" -v d="$d" -v n="$n" -v l="$l" -v b="$bytes" -v s="$same" -v m="$rss" 'BEGIN {
        printf "%-9s %-7s %-7s %6d %8.2f %9s %8.2f %8.2f %10s %9.2f× %9.2f× %10.1f %8.0f  %s\n", r, k, f * 100 "%", c, g,
            (d == "nan" ? "-" : sprintf("%.2f", d)), n, l, (d == "nan" ? "-" : sprintf("%.1f×", d / g)), n / g, g / l, b / 1e6, m / 1024, s }'
done < "$results"
echo "(dd/govex: how many times faster than data-diff — target ≥ 5; naive/gvx ≥ 1 at 1 %; gvx/limit ≤ 1.5 with no differences)"
