#!/usr/bin/env bash
# bench/routing.sh [SECONDS] [CLIENTS] [CLINICS]: routing through clinic.*
# against its baselines, side by side with pgbench and equal client counts.
#
#   (a) point lookup by id: clinic.patients (context set once per session,
#       and medpro_authenticate per transaction) vs the same query run
#       directly in the clinic database;
#   (b) a selective filter + ORDER BY ... LIMIT 20 on 100 000 patients vs a
#       view over dblink() that fetches the table; rows transferred per query;
#   (c) (a) vs a postgres_fdw foreign table on the same clinic table;
#   (d) (a) with medpro_authenticate per transaction, spread uniformly over
#       10, 100 and CLINICS (default 500) clinics, vs 10 clinics.
#
# Prints transactions per second and the ratios.  (d) gives each backend a
# cache big enough for every clinic (medpro.max_cached_connections); each
# client first visits every clinic once (one connection setup each), and the
# last SECONDS of the run are reported, the whole-run figure beside them.
set -euo pipefail
SECS=${1:-10}
CLIENTS=${2:-2}
CLINICS=${3:-500}
ROWS=100000
. "$(dirname "$0")/lib.sh"
PGBENCH=$(pg_config --bindir)/pgbench
WORK=$(mktemp -d)
chmod 755 "$WORK"
trap 'cat "$WORK/pgbench.err" 2>/dev/null | tail -5; rm -rf "$WORK"; scripts/cluster.sh destroy' EXIT
SOCK=$PGHOST

# Room for CLIENTS backends holding a connection to every clinic: connection
# slots, and sockets (a backend may use a third of its file descriptors for
# them, see AcquireExternalFD).
psql -X -q -d postgres -c "ALTER SYSTEM SET max_connections = $((CLIENTS * (CLINICS + 20) + 50))" \
	-c "ALTER SYSTEM SET max_files_per_process = $((3 * (CLINICS + 20) + 100))"
scripts/cluster.sh stop
# runuser (cluster.sh) goes through PAM, which resets the limit: start the
# server with setpriv when root, so that it keeps the raised ulimit -n.
ulimit -n $((4 * (CLINICS + 20) + 1000)) 2>/dev/null || echo "warning: could not raise ulimit -n" >&2
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	(cd / && setpriv --reuid="${MEDPRO_PGUSER_OS:-postgres}" --regid="${MEDPRO_PGUSER_OS:-postgres}" --init-groups \
		"$(pg_config --bindir)/pg_ctl" -D "$MEDPRO_CLUSTER/data" -l "$MEDPRO_CLUSTER/server.log" -w -t 60 start >/dev/null)
else
	scripts/cluster.sh start
fi
echo "server file descriptor limit: $(awk '/Max open files/ {print $4}' /proc/$(head -1 "$MEDPRO_CLUSTER/data/postmaster.pid")/limits)" >&2

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
CREATE EXTENSION postgres_fdw;
SELECT medpro_key_rotate() \g /dev/null
CREATE ROLE bench_app LOGIN;
GRANT medpro_api TO bench_app;
SELECT medpro_register_clinic('Bench', 'FR', 'admin@bench.test', 'timing secret 2026') \g /dev/null
SQL
DB=$(psql -X -At -d postgres -c "SELECT db_name FROM medpro.clinics")
TOKEN=$(psql -X -At -d postgres -U bench_app -c "SELECT medpro_login('admin@bench.test', 'timing secret 2026')")
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v rows=$ROWS <<'SQL'
INSERT INTO patients (id, first_name, last_name, patient_number, created_at)
SELECT md5('p' || n)::uuid, 'First' || n, 'Last' || (n % 2000), 'P' || lpad(n::text, 6, '0'),
	   timestamptz '2026-01-01' + n * interval '1 minute'
  FROM generate_series(1, :rows) n;
ANALYZE patients;
SQL
# Baselines: a dblink view and a postgres_fdw foreign table on the clinic's table.
psql -X -q -v ON_ERROR_STOP=1 -d postgres -v db="$DB" -v sock="$SOCK" -v port="$PGPORT" <<'SQL'
SELECT format('host=%s port=%s dbname=%s user=postgres', :'sock', :'port', :'db') AS conninfo \gset
CREATE VIEW bench_dblink_patients AS
SELECT * FROM dblink(:'conninfo',
					 'SELECT id, first_name, last_name, created_at, deleted_at FROM patients')
	 AS t(id uuid, first_name text, last_name text, created_at timestamptz, deleted_at timestamptz)
 WHERE deleted_at IS NULL;
CREATE SERVER bench_pgfdw FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host :'sock', port :'port', dbname :'db');
CREATE USER MAPPING FOR postgres SERVER bench_pgfdw OPTIONS (user 'postgres');
CREATE SCHEMA pgfdw;
IMPORT FOREIGN SCHEMA public LIMIT TO (patients) FROM SERVER bench_pgfdw INTO pgfdw;
SQL

cat > "$WORK/routed_auth.sql" <<SQL
\set n random(1, $ROWS)
BEGIN;
SELECT medpro_authenticate(':tok') IS NOT NULL;
SELECT first_name, last_name FROM clinic.patients WHERE id = md5('p' || :n)::uuid;
COMMIT;
SQL
cat > "$WORK/routed_session.sql" <<SQL
\set n random(1, $ROWS)
\if :auth = 0
SELECT medpro_authenticate(':tok', true) IS NOT NULL;
\set auth 1
\endif
SELECT first_name, last_name FROM clinic.patients WHERE id = md5('p' || :n)::uuid;
SQL
cat > "$WORK/direct.sql" <<SQL
\set n random(1, $ROWS)
SELECT first_name, last_name FROM patients WHERE id = md5('p' || :n)::uuid;
SQL
cat > "$WORK/pgfdw.sql" <<SQL
\set n random(1, $ROWS)
SELECT first_name, last_name FROM pgfdw.patients WHERE id = md5('p' || :n)::uuid;
SQL
Q_PAGE="SELECT id, first_name, last_name, created_at FROM %s WHERE last_name = 'Last' || :k ORDER BY created_at DESC LIMIT 20;"
{ echo "\\set k random(0, 1999)"
  echo "\\if :auth = 0"
  echo "SELECT medpro_authenticate(':tok', true) IS NOT NULL;"
  echo "\\set auth 1"
  echo "\\endif"
  printf "$Q_PAGE\n" clinic.patients; } > "$WORK/page_routed.sql"
{ echo "\\set k random(0, 1999)"; printf "$Q_PAGE\n" bench_dblink_patients; } > "$WORK/page_dblink.sql"

tps() {
	"$PGBENCH" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" "$@" 2>"$WORK/pgbench.err" |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}
# warm up once
tps -T 2 -f "$WORK/direct.sql" "$DB" >/dev/null
DIRECT=$(tps -f "$WORK/direct.sql" "$DB")
SESSION=$(tps -f "$WORK/routed_session.sql" -D tok="$TOKEN" -D auth=0 -U bench_app postgres)
PGFDW=$(tps -f "$WORK/pgfdw.sql" postgres)
AUTH=$(tps -f "$WORK/routed_auth.sql" -D tok="$TOKEN" -U bench_app postgres)
PAGE=$(tps -f "$WORK/page_routed.sql" -D tok="$TOKEN" -D auth=0 -U bench_app postgres)
PAGE_DBLINK=$(tps -f "$WORK/page_dblink.sql" postgres)

# Rows that cross the connection for one (b) query.
ROWS_ROUTED=$(psql -X -At -U bench_app -d postgres <<SQL | sed -n 's/^ *Rows Fetched: //p'
SELECT medpro_authenticate('$TOKEN', true) IS NOT NULL;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
$(printf "$Q_PAGE" clinic.patients | sed "s/:k/42/")
SQL
)
ROWS_DBLINK=$(psql -X -At -d postgres -c "SELECT count(*) FROM dblink('host=$SOCK port=$PGPORT dbname=$DB user=postgres', 'SELECT id FROM patients') AS t(id uuid)")
REMOTE_SQL=$(psql -X -At -d postgres -c "EXPLAIN (VERBOSE, COSTS OFF) $(printf "$Q_PAGE" medpro.ft_patients | sed "s/:k/42/")" | sed -n 's/^ *Remote SQL: //p')

# (d): CLINICS clinics with 100 patients each, an admin token per clinic.
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
CREATE TABLE bench_tokens (n int PRIMARY KEY, clinic uuid, token text);
GRANT SELECT ON bench_tokens TO bench_app;
SQL
for n in $(seq 1 "$CLINICS"); do
	echo "INSERT INTO bench_tokens (n, clinic) SELECT $n, medpro_register_clinic('Bench $n', 'FR', 'admin$n@bench.test', 'timing secret 2026');"
done | psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null
psql -X -At -d postgres -c "SELECT n, db_name FROM bench_tokens b JOIN medpro.clinics c ON c.id = b.clinic ORDER BY n" |
while IFS='|' read -r n db; do
	psql -X -q -d "$db" -c "INSERT INTO patients (id, first_name, last_name) SELECT md5('$n' || 'p' || k)::uuid, 'First' || k, 'Last' || k FROM generate_series(1, 100) k"
done
psql -X -q -U bench_app -d postgres -c "SELECT n FROM bench_tokens" -At | while read -r n; do
	echo "UPDATE bench_tokens SET token = '$(psql -X -At -U bench_app -d postgres -c "SELECT medpro_login('admin$n@bench.test', 'timing secret 2026')")' WHERE n = $n;"
done > "$WORK/tokens.sql"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -f "$WORK/tokens.sql"
# Each client first visits the clinics in turn (opening its connections),
# then picks them at random; the last SECS seconds are the steady state.
cat > "$WORK/spread.sql" <<SQL
\set k random(1, 100)
\if :init = 0
SET medpro.max_cached_connections = $((CLINICS + 10));
\set init 1
\endif
\if :warm <= :nclinics
\set c :warm
\set warm :warm + 1
\else
\set c random(1, :nclinics)
\endif
BEGIN;
SELECT medpro_authenticate((SELECT token FROM bench_tokens WHERE n = :c)) IS NOT NULL;
SELECT first_name FROM clinic.patients WHERE id = md5(:c || 'p' || :k)::uuid;
COMMIT;
SQL
# tps of the last SECS seconds of a run long enough for the warm-up, and
# of the whole run
SPREAD_SECS=$((SECS + CLINICS / 10))
spread() {
	"$PGBENCH" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SPREAD_SECS" -P 1 -f "$WORK/spread.sql" \
		-D nclinics="$1" -D init=0 -D warm=1 -U bench_app postgres 2>"$WORK/progress.err" >"$WORK/spread.out" || true
	awk -v half="$((SPREAD_SECS - SECS))" '/^progress:/ { t = $2 + 0; if (t > half) { s += $4; c++ } }
		END { if (c) printf "%.0f", s / c; else printf "0" }' "$WORK/progress.err"
	printf ' %s\n' "$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/spread.out")"
	grep -v '^progress:' "$WORK/progress.err" | tail -3 >&2
}
read -r D10 D10ALL < <(spread 10)
read -r D100 D100ALL < <(spread 100)
read -r DN DNALL < <(spread "$CLINICS")

awk -v d="$DIRECT" -v s="$SESSION" -v a="$AUTH" -v f="$PGFDW" -v p="$PAGE" -v pd="$PAGE_DBLINK" \
	-v rr="$ROWS_ROUTED" -v rd="$ROWS_DBLINK" -v d10="$D10" -v d100="$D100" -v dn="$DN" \
	-v d10a="$D10ALL" -v d100a="$D100ALL" -v dna="$DNALL" -v n="$CLINICS" -v secs="$SECS" 'BEGIN {
	printf "%-40s %10s %8s %8s\n", "workload", "tps", "ratio", "target"
	printf "(a) point lookup by id\n"
	printf "  %-38s %10.0f %8s\n", "direct in the clinic database", d, "1"
	printf "  %-38s %10.0f %8.2f %8s\n", "routed, session context", s, s / d, ">=0.45"
	printf "  %-38s %10.0f %8.2f\n", "routed, medpro_authenticate per txn", a, a / d
	printf "(b) filter + ORDER BY ... LIMIT 20, 100k rows\n"
	printf "  %-38s %10.1f %8s\n", "view over dblink()", pd, "1"
	printf "  %-38s %10.1f %8.1f %8s\n", "routed", p, p / pd, ">=20"
	printf "  rows transferred per query: routed %s (LIMIT 20), dblink %s\n", rr, rd
	printf "(c) point lookup: routed vs postgres_fdw\n"
	printf "  %-38s %10.0f %8s\n", "postgres_fdw foreign table", f, "1"
	printf "  %-38s %10.0f %8.2f %8s\n", "routed, session context", s, s / f, ">=1"
	printf "(d) lookup + authenticate per txn, spread over clinics (last %d s, after each client visited every clinic / whole run)\n", secs
	printf "  %-38s %10.0f %8s   (whole run %.0f)\n", "10 clinics", d10, "1", d10a
	printf "  %-38s %10.0f %8.2f   (whole run %.0f)\n", "100 clinics", d100, d100 / d10, d100a
	printf "  %-38s %10.0f %8.2f %8s (whole run %.0f)\n", n " clinics", dn, dn / d10, ">=0.8", dna
}'
echo "(b) remote SQL: $REMOTE_SQL"
echo "($CLIENTS clients, $SECS s per run, (d) $SPREAD_SECS s per run; pgbench simple protocol; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
