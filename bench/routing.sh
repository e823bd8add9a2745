#!/usr/bin/env bash
# bench/routing.sh [SECONDS] [CLIENTS]: a point lookup by id through the
# routed view clinic.patients against the same query run directly in the
# clinic database, side by side with pgbench and equal client counts.
#
#   routed+auth     BEGIN; medpro_authenticate(token); lookup; COMMIT  (PostgREST-style)
#   routed session  lookup only, the context set once per connection
#   direct          lookup in the clinic database itself
#
# Prints transactions per second and the ratios to direct.
set -euo pipefail
SECS=${1:-10}
CLIENTS=${2:-2}
ROWS=1000
. "$(dirname "$0")/lib.sh"
PGBENCH=$(pg_config --bindir)/pgbench
WORK=$(mktemp -d)
trap 'cat "$WORK/pgbench.err" 2>/dev/null | tail -5; rm -rf "$WORK"; scripts/cluster.sh destroy' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
SELECT medpro_key_rotate() \g /dev/null
CREATE ROLE bench_app LOGIN;
GRANT medpro_api TO bench_app;
SELECT medpro_register_clinic('Bench', 'FR', 'admin@bench.test', 'bench secret 2026') \g /dev/null
SQL
DB=$(psql -X -At -d postgres -c "SELECT db_name FROM medpro.clinics")
TOKEN=$(psql -X -At -d postgres -U bench_app -c "SELECT medpro_login('admin@bench.test', 'bench secret 2026')")
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v rows=$ROWS <<'SQL'
INSERT INTO patients (id, first_name, last_name, patient_number)
SELECT md5('p' || n)::uuid, 'First' || n, 'Last' || n, 'P' || lpad(n::text, 6, '0')
  FROM generate_series(1, :rows) n;
ANALYZE patients;
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

tps() {
	"$PGBENCH" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" "$@" 2>"$WORK/pgbench.err" |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}
# warm up each once
tps -T 2 -f "$WORK/direct.sql" "$DB" >/dev/null
DIRECT=$(tps -f "$WORK/direct.sql" "$DB")
SESSION=$(tps -f "$WORK/routed_session.sql" -D tok="$TOKEN" -D auth=0 -U bench_app postgres)
AUTH=$(tps -f "$WORK/routed_auth.sql" -D tok="$TOKEN" -U bench_app postgres)
awk -v d="$DIRECT" -v s="$SESSION" -v a="$AUTH" 'BEGIN {
	printf "%-16s %10s %8s\n", "point lookup", "tps", "ratio"
	printf "%-16s %10.0f %8.2f\n", "direct", d, 1
	printf "%-16s %10.0f %8.2f\n", "routed session", s, s / d
	printf "%-16s %10.0f %8.2f\n", "routed+auth", a, a / d
}'
echo "($CLIENTS clients, $SECS s each, $ROWS patients; pgbench simple protocol)"
