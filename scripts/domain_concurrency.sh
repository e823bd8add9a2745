#!/usr/bin/env bash
# scripts/domain_concurrency.sh: concurrent writers through clinic.*, for
# test/domain_concurrency.sql (pgTAP cannot fork).  Each session is a psql
# in the background, connected as ROLE to DB (PGHOST/PGPORT from the
# environment), authenticating with TOKEN in every transaction.
#
#   domain_concurrency.sh invoices DB ROLE TOKEN PATIENT SESSIONS COUNT
#       each session issues COUNT invoices, one per transaction, and rolls
#       back one more after every tenth (a number handed out, then given
#       back); prints "committed=N failed=N"
#   domain_concurrency.sh bookings DB ROLE TOKEN PATIENT SESSIONS PRACTITIONER START
#       the sessions wait at a barrier, then each books the same
#       practitioner from START for 30 minutes (shifted by i minutes) and
#       holds its transaction open briefly; prints "booked=N refused=N other=N"
#   domain_concurrency.sh patients DB ROLE TOKEN - SESSIONS
#       the sessions insert the same person (names differing only in case
#       and accents) at once; prints "inserted=N refused=N other=N"
#
# Exits non-zero on a usage error only: outcomes are for the caller to judge.
set -euo pipefail
mode=$1 db=$2 role=$3 token=$4 patient=$5 sessions=$6
tmp=$(mktemp -d /tmp/medpro-conc-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
barrier=727301

psql_session() {
	psql -X -q -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate -d "$db" -U "$role" -f "$1" >"$2" 2>&1
}

case "$mode" in
invoices)
	count=$7
	for s in $(seq 1 "$sessions"); do
		f="$tmp/s$s.sql"
		: >"$f"
		for i in $(seq 1 "$count"); do
			cat >>"$f" <<SQL
BEGIN;
SELECT medpro_authenticate('$token') IS NOT NULL AS authenticated \\gset
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', '$patient', '[{"description": "Consultation $s-$i", "quantity": 1, "unit_price": 25}]')
RETURNING 'issued ' || document_number AS line \\gset
\\echo :line
COMMIT;
SQL
			if [ $((i % 10)) -eq 0 ]; then
				cat >>"$f" <<SQL
BEGIN;
SELECT medpro_authenticate('$token') IS NOT NULL AS authenticated \\gset
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', '$patient', '[{"description": "Rolled back", "quantity": 1, "unit_price": 1}]');
ROLLBACK;
SQL
			fi
		done
		psql_session "$f" "$tmp/s$s.out" &
	done
	wait
	committed=$(cat "$tmp"/s*.out | grep -c '^issued ' || true)
	failed=$(cat "$tmp"/s*.out | grep -c 'ERROR' || true)
	echo "committed=$committed failed=$failed"
	;;
bookings | patients)
	# The barrier: this session holds an advisory lock that every writer
	# waits for (shared) after it has authenticated.
	psql -X -q -d "$db" -U "$role" -c "SELECT pg_advisory_lock($barrier); SELECT pg_sleep(2)" >/dev/null 2>&1 &
	gate=$!
	for _ in $(seq 1 50); do
		held=$(psql -X -At -d "$db" -U "$role" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $barrier AND granted")
		[ "$held" = 1 ] && break
		sleep 0.1
	done
	names=("Hélène" "helene" "HÉLÈNE" "Helene" "hélène" "HELENE" "Hélene" "helène" "Hèlene" "HeLeNe")
	for s in $(seq 1 "$sessions"); do
		f="$tmp/s$s.sql"
		if [ "$mode" = bookings ]; then
			practitioner=$7 start=$8
			insert="INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
VALUES ('$patient', '$practitioner', '$start'::timestamptz + interval '$s minutes',
        '$start'::timestamptz + interval '$s minutes' + interval '30 minutes')"
		else
			insert="INSERT INTO clinic.patients (first_name, last_name)
VALUES ('${names[$((s % ${#names[@]}))]}', 'Dupont-Durand Concurrent')"
		fi
		cat >"$f" <<SQL
BEGIN;
SELECT medpro_authenticate('$token') IS NOT NULL AS authenticated \\gset
SELECT pg_advisory_lock_shared($barrier) IS NOT NULL AS passed \\gset
$insert;
\\if :ERROR
\\else
\\echo written
SELECT pg_sleep(0.3) IS NOT NULL AS slept \\gset
\\endif
COMMIT;
SQL
		psql_session "$f" "$tmp/s$s.out" &
	done
	wait
	kill "$gate" 2>/dev/null || true
	ok=$(cat "$tmp"/s*.out | grep -c '^written' || true)
	if [ "$mode" = bookings ]; then
		refused=$(cat "$tmp"/s*.out | grep -c 'ERROR:  23P01' || true)
		other=$(cat "$tmp"/s*.out | grep 'ERROR' | grep -vc 'ERROR:  23P01' || true)
		echo "booked=$ok refused=$refused other=$other"
	else
		refused=$(cat "$tmp"/s*.out | grep -c 'ERROR:  23505' || true)
		other=$(cat "$tmp"/s*.out | grep 'ERROR' | grep -vc 'ERROR:  23505' || true)
		echo "inserted=$ok refused=$refused other=$other"
	fi
	;;
*)
	echo "usage: $0 invoices|bookings|patients DB ROLE TOKEN PATIENT SESSIONS ..." >&2
	exit 2
	;;
esac
