#!/usr/bin/env bash
# bench/migrate.sh [N] [M]: operating many clinics, in one run on a
# throwaway cluster.
#
#   1. registers N real clinics (default 200), one transaction each; the
#      first 40 alternate between a spare database from the pool
#      (medpro_fill_spare_pool(1) before each, not timed) and a clone of the
#      template; prints the median and mean of each and their ratio;
#   2. adds M rows for clinics at the latest version that have no database
#      at all (default 300, so N + M = 500 clinics), and times a no-op
#      medpro_migrate_all() over all of them (median of 5 runs): clinics at
#      the latest version are skipped from the central record, so any
#      connection attempt would fail and show;
#   3. hides those rows again and rolls out one-statement migrations
#      (ALTER TABLE ... ADD COLUMN) to the N clinics with parallel => 1 and
#      parallel => 4, alternating (1, 4, 4, 1) so both see the same load,
#      and prints the time per mode and the ratio.
set -euo pipefail
N=${1:-200}
M=${2:-300}
. "$(dirname "$0")/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -v m="$M" -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
SELECT medpro.ensure_template() IS NOT NULL AS template_ready \g /dev/null
CREATE TEMP TABLE timing (what text, ms float8);
CREATE PROCEDURE register(n int, timed int) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	mode text;
BEGIN
	FOR i IN 1..n LOOP
		-- the first 2 * timed alternate: a spare from the pool, then a template clone
		mode := CASE WHEN i > 2 * timed THEN 'untimed' WHEN i % 2 = 1 THEN 'register (spare pool)' ELSE 'register (template clone)' END;
		IF mode = 'register (spare pool)' THEN
			PERFORM medpro_fill_spare_pool(1);
			COMMIT;
		END IF;
		t0 := clock_timestamp();
		PERFORM medpro_register_clinic(format('Bench clinic %s', i), 'FR',
									   format('admin-%s@bench.test', gen_random_uuid()), 'timing secret 2026');
		COMMIT;
		INSERT INTO timing VALUES (mode, extract(epoch FROM clock_timestamp() - t0) * 1000);
		COMMIT;
	END LOOP;
END $$;
-- one warm-up pair outside the measurement
CALL register(2, 1);
TRUNCATE timing;
CALL register(:n - 2, 20);
\pset footer off
SELECT what AS "register clinic", count(*) AS clinics, round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) AS "median ms",
	   round(avg(ms)::numeric, 1) AS "mean ms"
  FROM timing WHERE what LIKE 'register %' GROUP BY what ORDER BY what DESC;
SELECT round(((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timing WHERE what = 'register (template clone)') /
			  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timing WHERE what = 'register (spare pool)'))::numeric, 2)
	   AS "ratio of medians (clone / spare)";

-- Clinics with no database, at the latest version.
INSERT INTO medpro.clinics (name, country, status, server, db_name, db_role, schema_version)
SELECT format('Ghost clinic %s', i), 'FR', 'active', 'local', format('bench_ghost_%s', i), format('bench_ghost_%s', i),
	   (SELECT max(version) FROM medpro.migrations)
  FROM generate_series(1, :m) i;
CREATE PROCEDURE noop(runs int) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	bad int;
BEGIN
	FOR i IN 1..runs LOOP
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE status <> 'current') INTO bad FROM medpro_migrate_all();
		INSERT INTO timing VALUES ('noop', extract(epoch FROM clock_timestamp() - t0) * 1000);
		IF bad > 0 THEN
			RAISE EXCEPTION 'a no-op run did work on % clinics', bad;
		END IF;
		COMMIT;
	END LOOP;
END $$;
CALL noop(5);
SELECT (SELECT count(*) FROM medpro.clinics WHERE deleted_at IS NULL) AS clinics,
	   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) AS "no-op migrate_all median ms",
	   round(min(ms)::numeric, 1) AS "min ms", round(max(ms)::numeric, 1) AS "max ms"
  FROM timing WHERE what = 'noop';
UPDATE medpro.clinics SET deleted_at = now(), status = 'dropped' WHERE name LIKE 'Ghost clinic %';

CREATE PROCEDURE rollout(version int, parallel int) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	ok int;
BEGIN
	PERFORM medpro_add_migration(version, format('bench column %s', version),
								 format('ALTER TABLE patients ADD COLUMN bench_%s text', version));
	COMMIT;
	t0 := clock_timestamp();
	SELECT count(*) FILTER (WHERE status = 'migrated') INTO ok FROM medpro_migrate_all(parallel);
	INSERT INTO timing VALUES (format('parallel %s', parallel), extract(epoch FROM clock_timestamp() - t0) * 1000);
	IF ok <> (SELECT count(*) FROM medpro.clinics WHERE deleted_at IS NULL) THEN
		RAISE EXCEPTION 'only % clinics migrated', ok;
	END IF;
	COMMIT;
END $$;
CALL rollout(1000, 1);
CALL rollout(1001, 4);
CALL rollout(1002, 4);
CALL rollout(1003, 1);
SELECT what AS "one-statement migration", (SELECT count(*) FROM medpro.clinics WHERE deleted_at IS NULL) AS clinics,
	   count(*) AS runs, round(avg(ms)::numeric, 0) AS "mean ms per run",
	   round((avg(ms) / (SELECT count(*) FROM medpro.clinics WHERE deleted_at IS NULL))::numeric, 2) AS "ms per clinic"
  FROM timing WHERE what LIKE 'parallel %' GROUP BY what ORDER BY what;
SELECT round(((SELECT avg(ms) FROM timing WHERE what = 'parallel 1') /
			  (SELECT avg(ms) FROM timing WHERE what = 'parallel 4'))::numeric, 2) AS "speed-up (parallel 1 / parallel 4)";
SQL
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
