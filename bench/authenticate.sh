#!/usr/bin/env bash
# bench/authenticate.sh [N]: cost of medpro_authenticate (keyring lookup by
# kid, unseal, HS256 verify, user and clinic checks, tenant context) against
# medpro_jwt_verify of the same token with the key given directly, side by
# side in one run.  Prints microseconds per call and the ratio.
set -euo pipefail
N=${1:-20000}
. "$(dirname "$0")/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
SELECT medpro_key_import('bench-key', 'HS256', 'bench-secret-bench-secret-bench-se') \g /dev/null
SELECT medpro_register_clinic('Bench', 'FR', 'doc@bench.test', 'timing secret 2026') AS clinic \gset
SELECT id AS uid FROM medpro.users WHERE email = 'doc@bench.test' \gset
-- a token of the imported key (kid header), as the legacy backend would sign it
SELECT medpro_jwt_sign(jsonb_build_object('userId', :'uid', 'companyId', :'clinic', 'exp', 4102444800),
					   'bench-secret-bench-secret-bench-se', 'HS256', 'bench-key') AS tok \gset
CREATE TEMP TABLE timing (what text, us float8);
CREATE TEMP TABLE params AS SELECT :'tok'::text AS tok, :n::int AS n;
DO $$
DECLARE
	t0 timestamptz;
	i int;
	tk text;
	n int;
BEGIN
	SELECT tok, params.n INTO tk, n FROM params;
	PERFORM medpro_authenticate(tk);
	t0 := clock_timestamp();
	FOR i IN 1..n LOOP
		PERFORM medpro_authenticate(tk);
	END LOOP;
	INSERT INTO timing VALUES ('medpro_authenticate', extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
	t0 := clock_timestamp();
	FOR i IN 1..n LOOP
		PERFORM medpro_jwt_verify(tk, 'bench-secret-bench-secret-bench-se');
	END LOOP;
	INSERT INTO timing VALUES ('medpro_jwt_verify', extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
END $$;
\pset footer off
SELECT what AS "per call", round(us::numeric, 1) AS "us" FROM timing ORDER BY us;
SELECT round(((SELECT us FROM timing WHERE what = 'medpro_authenticate') /
			  (SELECT us FROM timing WHERE what = 'medpro_jwt_verify'))::numeric, 1) AS "ratio (authenticate / verify)";
SQL
