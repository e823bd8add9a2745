#!/usr/bin/env bash
# test/lifecycle_bg.sh start|wait: a second medpro_migrate_all running in the
# background, for sql/lifecycle.sql (called through psql's \!).
#
#   start  runs "INSERT INTO public.bg_run SELECT * FROM medpro_migrate_all(2)"
#          as regress_op in database $MEDPRO_LC_DB, and returns once that
#          statement is running;
#   wait   waits for it to end and prints its error output, if any.
#
# Uses the PG* variables of the caller (pg_regress's psql).
set -euo pipefail
db=${MEDPRO_LC_DB:-regress_lifecycle}
state=${TMPDIR:-/tmp}/medpro-lifecycle-bg.${PGPORT:-5432}
case "${1:-}" in
start)
	rm -f "$state.err"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
		-c "SET ROLE regress_op" -c "SET client_min_messages = warning" \
		-c "INSERT INTO public.bg_run SELECT * FROM medpro_migrate_all(2)" \
		>/dev/null 2>"$state.err" &
	echo $! >"$state.pid"
	for _ in $(seq 1 200); do
		n=$(psql -X -A -t -d "$db" -c "SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE 'INSERT INTO public.bg_run%' AND state = 'active'")
		if [ "$n" = 1 ]; then
			# let it take the first clinics
			sleep 0.3
			exit 0
		fi
		sleep 0.05
	done
	echo "the background run did not start"
	exit 1
	;;
wait)
	pid=$(cat "$state.pid")
	for _ in $(seq 1 1200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if [ -s "$state.err" ]; then
		cat "$state.err"
	fi
	rm -f "$state.pid" "$state.err"
	;;
*)
	echo "usage: $0 start|wait" >&2
	exit 2
	;;
esac
