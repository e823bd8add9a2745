#!/usr/bin/env bash
# bench/provision.sh [N]: time to register N clinics cloned from the template
# against N clinics whose database is created empty and migrated (every
# migration replayed), side by side in one run on a throwaway cluster.
# Prints milliseconds per clinic and the ratio.  N defaults to 20.
set -euo pipefail
N=${1:-20}
. "$(dirname "$0")/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
-- Build the template once, outside the measurement.
SELECT medpro.ensure_template() IS NOT NULL AS template_ready \g /dev/null
CREATE TEMP TABLE timing (mode text, ms float8);
CREATE PROCEDURE bench(n int) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	i int;
	mode text;
BEGIN
	-- alternate the two modes, so that both see the same machine load
	FOR i IN 1..n LOOP
		FOREACH mode IN ARRAY ARRAY['template', 'replay'] LOOP
			PERFORM set_config('medpro.clinic_template', (mode = 'template')::text, false);
			t0 := clock_timestamp();
			PERFORM medpro_register_clinic(format('%s clinic %s', mode, i), 'FR',
										   format('admin-%s@bench.test', gen_random_uuid()), 'timing secret 2026');
			COMMIT;
			INSERT INTO timing VALUES (mode, extract(epoch FROM clock_timestamp() - t0) * 1000);
			COMMIT;
		END LOOP;
	END LOOP;
END $$;
-- Warm up both paths (caches, connections) outside the measurement.
CALL bench(1);
TRUNCATE timing;
CALL bench(:n);
\pset footer off
SELECT mode AS "register clinic", count(*) AS clinics,
	   round(avg(ms)::numeric, 1) AS "mean ms", round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) AS "median ms"
  FROM timing GROUP BY mode ORDER BY 3;
SELECT round(((SELECT avg(ms) FROM timing WHERE mode = 'replay') /
			  (SELECT avg(ms) FROM timing WHERE mode = 'template'))::numeric, 2) AS "ratio (replay / template)";
SQL
