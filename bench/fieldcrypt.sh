#!/usr/bin/env bash
# bench/fieldcrypt.sh [N]: the cost of the encrypted social_security_number
# through clinic.patients, side by side in one session and one clinic:
#
#   insert     N single-row INSERTs without the number  vs  with it (encrypted)
#   lookup     N lookups by an unindexed text column     vs  by the number (blind index)
#   read       20 reads of every row's first_name        vs  of every row's number (decrypted)
#
# Prints milliseconds and the ratios encrypted / plain.
set -euo pipefail
N=${1:-300}
. "$(dirname "$0")/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -v n="$N" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
SELECT medpro_key_rotate() \g /dev/null
SELECT medpro_register_clinic('Banc Essai', 'FR', 'admin@bench.test', 'chief of bench 26') AS c \gset
SELECT medpro_authenticate(medpro_login('admin@bench.test', 'chief of bench 26'), true) IS NOT NULL AS s \gset
CREATE TEMP TABLE t (what text, ms float8);
CREATE FUNCTION pg_temp.run(what text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE stmt;
	INSERT INTO t VALUES (what, extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
SELECT pg_temp.run('insert plain', format($s$DO $d$ BEGIN FOR i IN 1..%s LOOP
	INSERT INTO clinic.patients (first_name, last_name) VALUES ('n' || i, 'plain'); END LOOP; END $d$$s$, :n));
SELECT pg_temp.run('insert encrypted', format($s$DO $d$ BEGIN FOR i IN 1..%s LOOP
	INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('n' || i, 'enc', '185057512345673'); END LOOP; END $d$$s$, :n));
SELECT pg_temp.run('lookup plain', format($s$DO $d$ DECLARE c int; BEGIN FOR i IN 1..%s LOOP
	SELECT count(*) INTO c FROM clinic.patients WHERE patient_number = 'none'; END LOOP; END $d$$s$, :n));
SELECT pg_temp.run('lookup encrypted', format($s$DO $d$ DECLARE c int; BEGIN FOR i IN 1..%s LOOP
	SELECT count(*) INTO c FROM clinic.patients WHERE social_security_number = '290122A00401281'; END LOOP; END $d$$s$, :n));
SELECT pg_temp.run('read plain', $s$DO $d$ DECLARE c int; BEGIN FOR i IN 1..20 LOOP
	SELECT count(first_name) INTO c FROM clinic.patients; END LOOP; END $d$$s$);
SELECT pg_temp.run('read encrypted', $s$DO $d$ DECLARE c int; BEGIN FOR i IN 1..20 LOOP
	SELECT count(social_security_number) INTO c FROM clinic.patients; END LOOP; END $d$$s$);
\echo rows per pass: :n inserts and lookups; reads cover every row (2 x :n)
SELECT p.w AS operation, round(p.ms::numeric, 1) AS plain_ms, round(e.ms::numeric, 1) AS encrypted_ms,
	   round((e.ms / p.ms)::numeric, 2) AS ratio
  FROM (SELECT split_part(what, ' ', 1) AS w, ms FROM t WHERE what LIKE '% plain') p
  JOIN (SELECT split_part(what, ' ', 1) AS w, ms FROM t WHERE what LIKE '% encrypted') e USING (w)
 ORDER BY 1;
SQL
