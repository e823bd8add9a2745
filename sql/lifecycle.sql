--
-- lifecycle: operating 30 clinics.  Operators' migrations rolled out by
-- medpro_migrate_all (one clinic failing, a rerun, a concurrent run, a
-- cancelled run, a non-transactional migration), clinic.* following the
-- schema, suspend, reactivate, drop and repair.  Runs in a central database
-- of its own, so only its own clinics are rolled out.  Ids are random: only
-- booleans and counts are printed.
--
\set VERBOSITY terse
CREATE DATABASE regress_lifecycle;
\c regress_lifecycle
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
RESET client_min_messages;
CREATE FUNCTION public.regress_try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- A query's single text column, run in a clinic database as the superuser.
CREATE FUNCTION in_clinic(clinic uuid, query text) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT v FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'),
								(SELECT db_name FROM medpro.clinics WHERE id = clinic)), query) AS t(v text)
$$;
-- The second runner's results (test/lifecycle_bg.sh).
CREATE TABLE public.bg_run (clinic_id uuid, from_version int, to_version int, status text, error text, duration interval);
GRANT INSERT, SELECT ON public.bg_run TO regress_op;
SELECT medpro_key_rotate() IS NOT NULL AS key;
-- the extension's own schema version, before operators' migrations
SELECT max(version) AS base FROM medpro.migrations \gset

-- Missing privileges: 42501.
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_suspend_clinic('aaaaaaaa-0000-4000-8000-000000000001', 'x')$$);
SELECT regress_try($$SELECT medpro_reactivate_clinic('aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT medpro_drop_clinic('aaaaaaaa-0000-4000-8000-000000000001', 'x')$$);
SELECT regress_try($$SELECT * FROM medpro_migrate_all()$$);
SELECT regress_try($$SELECT medpro_add_migration(1000, 'x', 'SELECT 1')$$);
SELECT regress_try($$SELECT * FROM medpro_refresh_relations()$$);
SELECT regress_try($$SELECT * FROM medpro.clinic_migration_history$$);
RESET ROLE;
SET ROLE regress_nobody;
SELECT regress_try($$SELECT medpro_suspend_clinic('aaaaaaaa-0000-4000-8000-000000000001', 'x')$$);
SELECT regress_try($$SELECT * FROM medpro_migrate_all()$$);
RESET ROLE;

-- Bad input: 22023.
SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_suspend_clinic('aaaaaaaa-0000-4000-8000-000000000001', 'unpaid')$$);
SELECT regress_try($$SELECT medpro_suspend_clinic(NULL, 'unpaid')$$);
SELECT regress_try($$SELECT medpro_reactivate_clinic('aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT medpro_drop_clinic('aaaaaaaa-0000-4000-8000-000000000001', 'x')$$);
SELECT regress_try($$SELECT * FROM medpro_migrate_all(0)$$);
SELECT regress_try($$SELECT * FROM medpro_migrate_all(65)$$);
SELECT regress_try($$SELECT medpro_add_migration(999, 'x', 'SELECT 1')$$);
SELECT regress_try($$SELECT medpro_add_migration(NULL, 'x', 'SELECT 1')$$);
SELECT regress_try($$SELECT medpro_add_migration(1000, ' ', 'SELECT 1')$$);
SELECT regress_try($$SELECT medpro_add_migration(1000, 'x', '  ')$$);

-- Thirty clinics.
SELECT count(medpro_register_clinic(format('Lifecycle %s', i), 'FR', format('admin%s@lifecycle.test', i),
									'Lifecycle pass 2026'))
  FROM generate_series(1, 30) i;
SELECT id AS a FROM medpro.clinics WHERE name = 'Lifecycle 1' \gset
SELECT id AS b FROM medpro.clinics WHERE name = 'Lifecycle 2' \gset
SELECT id AS x FROM medpro.clinics WHERE name = 'Lifecycle 17' \gset
SELECT id AS d FROM medpro.clinics WHERE name = 'Lifecycle 29' \gset
SELECT id AS z FROM medpro.clinics WHERE name = 'Lifecycle 30' \gset
SELECT medpro_create_user('doc@lifecycle.test', 'Lifecycle doctor 1', 'doctor', clinic_id => :'a') IS NOT NULL AS doctor;
SELECT medpro_create_user('sec@lifecycle.test', 'Lifecycle secretary 1', 'secretary', clinic_id => :'a') IS NOT NULL AS secretary;

-- Nothing to do: every clinic reported from the central record (and the
-- progress NOTICE).
SELECT status, count(*), min(from_version) = max(to_version) AS unchanged, bool_and(duration IS NULL) AS no_connection
  FROM medpro_migrate_all() GROUP BY 1;
RESET ROLE;
-- a clinic row at the latest version whose database does not exist: no
-- connection is attempted, so it is reported current, not failed
INSERT INTO medpro.clinics (name, country, status, server, db_name, db_role, schema_version)
VALUES ('Ghost', 'FR', 'active', 'local', 'lifecycle_no_such_database', 'lifecycle_no_such_role', :base) RETURNING name;
SET ROLE regress_op;
SET client_min_messages = warning;
SELECT m.status, m.error FROM medpro_migrate_all() m JOIN medpro.clinics c ON c.id = m.clinic_id WHERE c.name = 'Ghost';
RESET client_min_messages;
RESET ROLE;
DELETE FROM medpro.clinics WHERE name = 'Ghost';
SET ROLE regress_op;

-- Invalid SQL: its error, and no clinic (nor the template) changed.
SELECT regress_try($$SELECT medpro_add_migration(1000, 'broken', 'ALTER TABLE no_such_table ADD COLUMN x int')$$);
SELECT count(*) AS operator_migrations FROM medpro.migrations WHERE version >= 1000;
SELECT count(*) FILTER (WHERE schema_version = :base) AS at_base, count(*) AS clinics FROM medpro.clinic_status;
RESET ROLE;

-- Clinic x's schema conflicts with migration 1000 (a column made by hand).
SELECT in_clinic(:'x', 'ALTER TABLE patients ADD COLUMN allergy_level text') AS conflict;

-- Migration 1000: two columns (one medical) and a table.
SET ROLE regress_op;
SELECT medpro_add_migration(1000, 'allergy level', $$
ALTER TABLE patients ADD COLUMN preferred_language text;
ALTER TABLE patients ADD COLUMN allergy_level text;
COMMENT ON COLUMN patients.allergy_level IS 'medpro:medical severity of the allergies';
CREATE TABLE visits (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	company_id uuid NOT NULL,
	reason text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	deleted_at timestamptz
);
CREATE TRIGGER visits_company BEFORE INSERT OR UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION medpro_check_company();
$$);
-- the same migration again is a no-op; another name or text is refused
SELECT medpro_add_migration(m.version, m.name, m.sql) FROM medpro.migrations m WHERE m.version = 1000;
SELECT regress_try($$SELECT medpro_add_migration(1000, 'allergy level', 'ALTER TABLE patients ADD COLUMN y text')$$);
SELECT regress_try($$SELECT medpro_add_migration(1000, 'renamed', 'SELECT 1')$$);
SELECT version, name, source, transactional, length(checksum) FROM medpro.migrations WHERE version >= 1000;
RESET ROLE;

-- clinic.* already shows the new schema (from the template), masked for secretaries.
SELECT attname, attfdwoptions FROM pg_attribute
 WHERE attrelid = 'medpro.ft_patients'::regclass AND attname IN ('preferred_language', 'allergy_level') ORDER BY attnum;
SELECT c.relname, ft.ftoptions, c.relacl FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
 WHERE c.relname = 'ft_visits';
SELECT table_name, has_table_privilege('medpro_api', 'clinic.' || table_name, 'SELECT, INSERT, UPDATE, DELETE') AS api
  FROM information_schema.views WHERE table_schema = 'clinic' AND table_name = 'visits';
SELECT pg_get_viewdef('clinic.visits'::regclass);
SELECT count(*) AS members FROM pg_depend
 WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'medpro') AND deptype = 'e'
   AND objid IN ('medpro.ft_visits'::regclass, 'clinic.visits'::regclass);
SET ROLE regress_op;
SELECT * FROM medpro_refresh_relations();

-- The rollout: 29 migrated, clinic x failed and was rolled back.
SET client_min_messages = warning;
CREATE TEMP TABLE run1 AS SELECT * FROM medpro_migrate_all(4);
RESET client_min_messages;
SELECT status, count(*), min(from_version) = :base AS from_base,
	   max(to_version) = CASE status WHEN 'failed' THEN :base ELSE 1000 END AS to_expected FROM run1 GROUP BY 1 ORDER BY 1;
SELECT clinic_id = :'x' AS is_x, from_version = :base AS from_base, to_version = :base AS still_base, error
  FROM run1 WHERE status = 'failed';
SELECT status, schema_version = :base AS at_base, last_error, failed_version, pending_migrations FROM medpro.clinic_status WHERE id = :'x';
SELECT status, attempts, error FROM medpro.clinic_migration_history WHERE clinic_id = :'x' AND version = 1000;
RESET ROLE;
SELECT in_clinic(:'x', $$SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns
	WHERE table_name = 'patients' AND column_name IN ('preferred_language', 'allergy_level')$$) AS x_columns,
	   in_clinic(:'x', 'SELECT max(version)::text FROM medpro_schema_migrations') = :'base' AS x_at_base,
	   in_clinic(:'x', $$SELECT to_regclass('visits')::text$$) AS x_visits;

-- Fixed by hand; the rerun only does clinic x.
SELECT in_clinic(:'x', 'ALTER TABLE patients DROP COLUMN allergy_level') AS fixed;
SET ROLE regress_op;
SET client_min_messages = warning;
CREATE TEMP TABLE run2 AS SELECT * FROM medpro_migrate_all(4);
RESET client_min_messages;
SELECT status, count(*), bool_and(clinic_id = :'x') AS only_x FROM run2 GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE schema_version = latest_version) AS at_latest, count(*) AS clinics,
	   count(last_error) AS with_error FROM medpro.clinic_status;
-- no work repeated: one attempt each, two for x
SELECT status, attempts, count(*) FROM medpro.clinic_migration_history WHERE version = 1000 GROUP BY 1, 2 ORDER BY 2;
RESET ROLE;
SELECT count(*) FILTER (WHERE v = '1') AS applied_once
  FROM medpro.clinics c, in_clinic(c.id, 'SELECT count(*)::text FROM medpro_schema_migrations WHERE version = 1000') v
 WHERE c.deleted_at IS NULL;

-- The new columns through clinic.*: the doctor sees the medical one, the
-- secretary does not; clinic b sees none of clinic a's rows.
SELECT medpro_login('admin2@lifecycle.test', 'Lifecycle pass 2026') AS b_admin \gset
SET ROLE regress_app;
SELECT medpro_login('admin1@lifecycle.test', 'Lifecycle pass 2026') AS a_admin \gset
SELECT medpro_login('doc@lifecycle.test', 'Lifecycle doctor 1') AS a_doc \gset
SELECT medpro_login('sec@lifecycle.test', 'Lifecycle secretary 1') AS a_sec \gset
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
INSERT INTO clinic.patients (first_name, last_name, preferred_language, allergy_level)
VALUES ('Lina', 'Morel', 'fr', 'severe') RETURNING first_name, preferred_language, allergy_level;
INSERT INTO clinic.visits (reason) VALUES ('check-up') RETURNING reason, company_id = :'a' AS own_clinic;
SELECT medpro_authenticate(:'a_sec', true) ->> 'role' AS role;
SELECT first_name, preferred_language, allergy_level FROM clinic.patients WHERE last_name = 'Morel';
SELECT count(*) FROM clinic.patients WHERE allergy_level = 'severe';
SELECT medpro_authenticate(:'b_admin', true) ->> 'role' AS role;
SELECT count(*) AS b_patients FROM clinic.patients WHERE last_name = 'Morel';
SELECT count(*) AS b_visits FROM clinic.visits;
SELECT medpro_reset();
RESET ROLE;

-- Migration 1001 is slow (0.1 s per clinic); a second run in the background
-- works at the same time: no clinic is migrated twice (a second ALTER TABLE
-- would fail).
SET ROLE regress_op;
SELECT medpro_add_migration(1001, 'nickname', 'SELECT pg_sleep(0.1); ALTER TABLE patients ADD COLUMN nickname text');
SELECT regress_try($$SELECT medpro_add_migration(1000, 'allergy level', 'x')$$);
RESET ROLE;
\! bash test/lifecycle_bg.sh start
SET ROLE regress_op;
SET client_min_messages = warning;
CREATE TEMP TABLE run3 AS SELECT * FROM medpro_migrate_all(2);
RESET client_min_messages;
RESET ROLE;
\! bash test/lifecycle_bg.sh wait
SELECT status, count(*) FROM (SELECT status FROM run3 UNION ALL SELECT status FROM bg_run) r
 WHERE status IN ('migrated', 'failed') GROUP BY 1 ORDER BY 1;
SELECT error FROM (SELECT * FROM run3 UNION ALL SELECT * FROM bg_run) r WHERE status = 'failed';
SELECT count(*) AS migrated_twice FROM (SELECT clinic_id FROM (SELECT * FROM run3 UNION ALL SELECT * FROM bg_run) r
										 WHERE status = 'migrated' GROUP BY 1 HAVING count(*) > 1) t;
SELECT count(*) = (SELECT count(*) FROM run3) AS every_clinic_reported_by_both,
	   (SELECT count(*) FROM run3) = 30 AS thirty FROM bg_run;
SELECT status, attempts, count(*) FROM medpro.clinic_migration_history WHERE version = 1001 GROUP BY 1, 2;

SET ROLE regress_op;

-- Migration 1002 takes 0.3 s per clinic; statement_timeout cancels the run
-- in the middle.  Nothing is lost: each clinic has the migration's column
-- exactly when it recorded the migration, and the central record never
-- claims more than the clinic has.
SELECT medpro_add_migration(1002, 'insurer', 'SELECT pg_sleep(0.3); ALTER TABLE patients ADD COLUMN insurer text');
SET statement_timeout = '1500ms';
SELECT count(*) FROM medpro_migrate_all(2);
RESET statement_timeout;
RESET ROLE;
CREATE TEMP TABLE after_cancel AS
SELECT c.id, c.schema_version >= 1002 AS central,
	   (SELECT v FROM in_clinic(c.id, 'SELECT (count(*) > 0)::text FROM medpro_schema_migrations WHERE version = 1002') v)::boolean AS recorded,
	   (SELECT v FROM in_clinic(c.id, $$SELECT (count(*) > 0)::text FROM information_schema.columns WHERE table_name = 'patients' AND column_name = 'insurer'$$) v)::boolean AS has_column
  FROM medpro.clinics c WHERE c.deleted_at IS NULL;
SELECT count(*) FILTER (WHERE recorded) BETWEEN 1 AND 28 AS stopped_in_the_middle,
	   count(*) FILTER (WHERE recorded <> has_column) AS half_applied,
	   count(*) FILTER (WHERE central AND NOT recorded) AS central_ahead
  FROM after_cancel;
-- the rerun finishes every clinic, each in one attempt
SET ROLE regress_op;
SET client_min_messages = warning;
SELECT count(*) FILTER (WHERE status IN ('migrated', 'current')) AS done, count(*) FILTER (WHERE status = 'failed') AS failed
  FROM medpro_migrate_all(4);
RESET client_min_messages;
SELECT status, attempts, count(*) FROM medpro.clinic_migration_history WHERE version = 1002 GROUP BY 1, 2 ORDER BY 2;
SELECT count(*) FILTER (WHERE schema_version = latest_version) AS at_latest FROM medpro.clinic_status;
RESET ROLE;

-- The same from a second session: pg_cancel_backend on a running
-- medpro_migrate_all (migration 1003, 0.3 s per clinic, run in the background).
SET ROLE regress_op;
SELECT medpro_add_migration(1003, 'referrer', 'SELECT pg_sleep(0.3); ALTER TABLE patients ADD COLUMN referrer text');
RESET ROLE;
TRUNCATE bg_run;
\! bash test/lifecycle_bg.sh start
SELECT count(pg_cancel_backend(pid)) AS cancelled FROM pg_stat_activity
 WHERE query LIKE 'INSERT INTO public.bg_run%' AND state = 'active';
\! bash test/lifecycle_bg.sh wait
SELECT count(*) AS bg_rows FROM bg_run;
CREATE TEMP TABLE after_cancel2 AS
SELECT c.id, c.schema_version >= 1003 AS central,
	   (SELECT v FROM in_clinic(c.id, 'SELECT (count(*) > 0)::text FROM medpro_schema_migrations WHERE version = 1003') v)::boolean AS recorded,
	   (SELECT v FROM in_clinic(c.id, $$SELECT (count(*) > 0)::text FROM information_schema.columns WHERE table_name = 'patients' AND column_name = 'referrer'$$) v)::boolean AS has_column
  FROM medpro.clinics c WHERE c.deleted_at IS NULL;
SELECT count(*) FILTER (WHERE recorded) < 30 AS stopped_before_the_end,
	   count(*) FILTER (WHERE recorded <> has_column) AS half_applied,
	   count(*) FILTER (WHERE central AND NOT recorded) AS central_ahead
  FROM after_cancel2;
SET ROLE regress_op;
SET client_min_messages = warning;
SELECT count(*) FILTER (WHERE status IN ('migrated', 'current')) AS done, count(*) FILTER (WHERE status = 'failed') AS failed
  FROM medpro_migrate_all(4);
RESET client_min_messages;
SELECT status, attempts, count(*) FROM medpro.clinic_migration_history WHERE version = 1003 GROUP BY 1, 2 ORDER BY 2;
RESET ROLE;

-- An applied migration changed in one clinic database (b) is refused there.
SELECT in_clinic(:'b', $$UPDATE medpro_schema_migrations SET checksum = 'tampered' WHERE version = 1000 RETURNING version::text$$) AS tampered;
SET ROLE regress_op;
SELECT regress_try(format('SELECT medpro_migrate_clinic(%L)', :'b'));
RESET ROLE;

-- A non-transactional migration (CREATE INDEX CONCURRENTLY).  Clinic a has
-- an invalid index of that name, as an interrupted run leaves it: it is
-- dropped and built again.
SELECT in_clinic(:'a', $$INSERT INTO patients (first_name, last_name, nickname) VALUES ('Ana', 'Uno', 'same'), ('Bea', 'Dos', 'same') RETURNING 'inserted'$$) AS rows;
SELECT regress_try(format($$SELECT * FROM dblink_exec(%L, 'CREATE UNIQUE INDEX CONCURRENTLY patients_nickname_idx ON patients (nickname)')$$,
	format('host=%s port=%s dbname=%s user=postgres', split_part(current_setting('unix_socket_directories'), ',', 1),
		   current_setting('port'), (SELECT db_name FROM medpro.clinics WHERE id = :'a'))));
SELECT in_clinic(:'a', $$SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'patients_nickname_idx'::regclass$$) AS a_index_valid;
SET ROLE regress_op;
SELECT medpro_add_migration(1010, 'nickname index', E'-- medpro:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS patients_nickname_idx ON patients (nickname)');
SELECT version, transactional FROM medpro.migrations WHERE version = 1010;
SELECT regress_try($$SELECT medpro_add_migration(1005, 'late', 'SELECT 1')$$);
-- clinic b is refused (its record of 1000 changed), the others go on
SET client_min_messages = warning;
SELECT status, count(*), string_agg(DISTINCT error, '; ') FILTER (WHERE clinic_id = :'b') AS b_error
  FROM medpro_migrate_all(4) GROUP BY 1 ORDER BY 1;
RESET client_min_messages;
RESET ROLE;
SELECT in_clinic(:'a', $$SELECT indisvalid::text || ' ' || indisunique::text FROM pg_index WHERE indexrelid = 'patients_nickname_idx'::regclass$$) AS a_index,
	   in_clinic(:'b', $$SELECT count(*)::text FROM pg_index WHERE indexrelid = to_regclass('patients_nickname_idx')$$) AS b_index;
-- clinic b's record put back: the rerun does only b
SELECT in_clinic(:'b', format($$UPDATE medpro_schema_migrations SET checksum = %L WHERE version = 1000 RETURNING version::text$$,
							  (SELECT checksum FROM medpro.migrations WHERE version = 1000))) AS restored;
SET ROLE regress_op;
SET client_min_messages = warning;
SELECT status, count(*), bool_and(clinic_id = :'b') AS only_b FROM medpro_migrate_all(4) GROUP BY 1 ORDER BY 1;
RESET client_min_messages;
SELECT status, attempts, count(*) FROM medpro.clinic_migration_history WHERE version = 1010 GROUP BY 1, 2 ORDER BY 2;
RESET ROLE;
SELECT in_clinic(:'b', $$SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'patients_nickname_idx'::regclass$$) AS b_index;

-- Suspend clinic a: its token and its login are refused, its sessions end,
-- its role cannot connect.  Clinic b is not affected.
SET ROLE regress_app;
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
SELECT count(*) AS patients FROM clinic.patients;
SELECT medpro_reset();
RESET ROLE;
SELECT count(*) > 0 AS a_has_sessions FROM pg_stat_activity
 WHERE datname = (SELECT db_name FROM medpro.clinics WHERE id = :'a');
SET ROLE regress_op;
SELECT regress_try(format('SELECT medpro_suspend_clinic(%L, %L)', :'a', ' '));
SELECT medpro_suspend_clinic(:'a', 'unpaid subscription');
SELECT status, status_reason FROM medpro.clinic_status WHERE id = :'a';
RESET ROLE;
-- (terminated backends take a moment to exit)
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		PERFORM pg_stat_clear_snapshot();
		EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
							   WHERE datname = (SELECT db_name FROM medpro.clinics WHERE name = 'Lifecycle 1'));
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
SELECT count(*) AS a_sessions FROM pg_stat_activity WHERE datname = (SELECT db_name FROM medpro.clinics WHERE id = :'a');
SELECT has_database_privilege(db_role, db_name, 'CONNECT') AS can_connect FROM medpro.clinics WHERE id = :'a';
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'a_admin'));
SELECT regress_try($$SELECT medpro_login('admin1@lifecycle.test', 'Lifecycle pass 2026')$$);
SELECT medpro_authenticate(:'b_admin', true) ->> 'role' AS b_still_works;
SELECT count(*) AS b_patients FROM clinic.patients;
SELECT medpro_reset();
RESET ROLE;
SELECT action, new_data ->> 'reason' AS reason FROM medpro.audit_log WHERE clinic_id = :'a' AND action = 'clinic_suspend';
SET ROLE regress_op;
SELECT medpro_reactivate_clinic(:'a');
SELECT medpro_reactivate_clinic(:'a');
SELECT regress_try(format('SELECT medpro_reactivate_clinic(%L)', :'a'));
RESET ROLE;
SELECT has_database_privilege(db_role, db_name, 'CONNECT') AS can_connect FROM medpro.clinics WHERE id = :'a';
SET ROLE regress_app;
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
SELECT count(*) AS patients FROM clinic.patients WHERE last_name = 'Morel';
SELECT medpro_reset();
RESET ROLE;

-- Drop clinic z: a wrong confirmation drops nothing.
SELECT medpro_login('admin30@lifecycle.test', 'Lifecycle pass 2026') AS z_admin \gset
SELECT db_name AS z_db, db_role AS z_role FROM medpro.clinics WHERE id = :'z' \gset
SET ROLE regress_op;
SELECT regress_try(format('SELECT medpro_drop_clinic(%L, %L)', :'z', 'lifecycle 30'));
SELECT regress_try(format('SELECT medpro_drop_clinic(%L, NULL)', :'z'));
SELECT status FROM medpro.clinic_status WHERE id = :'z';
RESET ROLE;
SELECT count(*) AS z_database FROM pg_database WHERE datname = :'z_db';
SET ROLE regress_op;
SELECT medpro_drop_clinic(:'z', 'Lifecycle 30');
SET client_min_messages = warning;
SELECT regress_try(format('SELECT medpro_drop_clinic(%L, %L)', :'z', 'Lifecycle 30')) AS again;
RESET client_min_messages;
SELECT count(*) AS in_status FROM medpro.clinic_status WHERE id = :'z';
SELECT count(*) = (SELECT count(*) FROM medpro.migrations) AS full_history
  FROM medpro.clinic_migration_history WHERE clinic_id = :'z' AND status = 'applied';
RESET ROLE;
SELECT status, deleted_at IS NOT NULL AS deleted, db_password_sealed IS NULL AS no_password FROM medpro.clinics WHERE id = :'z';
SELECT (SELECT count(*) FROM pg_database WHERE datname = :'z_db') AS z_database,
	   (SELECT count(*) FROM pg_roles WHERE rolname = :'z_role') AS z_role;
SELECT string_agg(action, ',' ORDER BY id) AS z_audit FROM medpro.audit_log WHERE clinic_id = :'z';
SELECT count(*) FILTER (WHERE is_active) AS active_users, count(*) AS users FROM medpro.users WHERE clinic_id = :'z';
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'z_admin'));
RESET ROLE;

-- Crashes: a drop interrupted after its first step (clinic d marked
-- 'dropping'), and a registration that left a database and a role without
-- a clinic row.  medpro_repair() finishes and removes them.
UPDATE medpro.clinics SET status = 'dropping' WHERE id = :'d';
SELECT 'medpro_clinic_' || replace(gen_random_uuid()::text, '-', '_') AS orphan \gset
SELECT dblink_exec(format('host=%s port=%s dbname=postgres user=postgres',
						  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')),
				   format('CREATE ROLE %I', :'orphan')) AS role_made;
SELECT dblink_exec(format('host=%s port=%s dbname=postgres user=postgres',
						  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')),
				   format('CREATE DATABASE %I OWNER %I', :'orphan', :'orphan')) AS database_made;
SET ROLE regress_op;
SELECT problem, object IN (:'d', :'orphan') AS expected_object, action FROM medpro_repair() ORDER BY 1;
SELECT * FROM medpro_repair();
RESET ROLE;
SELECT status, deleted_at IS NOT NULL AS deleted FROM medpro.clinics WHERE id = :'d';
-- no orphan: every clinic-named database and role of this central database has a live clinic
SELECT count(*) AS orphans FROM (
	SELECT datname AS n, shobj_description(oid, 'pg_database') AS note FROM pg_database
	UNION ALL SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles) o
 WHERE o.n ~ '^medpro_clinic_' AND (o.note IS NULL OR o.note LIKE '% of regress_lifecycle')
   AND NOT EXISTS (SELECT 1 FROM medpro.clinics c WHERE c.db_name = o.n AND c.status IN ('active', 'suspended'));

-- The spare pool: a registration renames a spare database at the current
-- version instead of copying the template; a rolled-back one consumes it;
-- a new migration makes the spares stale, and they are replaced.
CREATE FUNCTION spares() RETURNS text LANGUAGE sql AS $$
	SELECT format('spares=%s current=%s', count(*),
				  count(*) FILTER (WHERE shobj_description(oid, 'pg_database')
										 = 'medpro spare of regress_lifecycle at ' || medpro.template_marker()))
	  FROM pg_database WHERE datname LIKE 'medpro\_spare\_%'
$$;
SET ROLE regress_op;
SELECT regress_try('SELECT medpro_fill_spare_pool(-1)');
SELECT medpro_fill_spare_pool(2) AS ready;
RESET ROLE;
SELECT spares();
SET ROLE regress_op;
SELECT medpro_register_clinic('Lifecycle spare', 'ES', 'admin@spare.test', 'Lifecycle pass 2026') AS s \gset
RESET ROLE;
SELECT spares();
SELECT c.status, c.schema_version = (SELECT max(version) FROM medpro.migrations) AS at_latest,
	   pg_get_userbyid(d.datdba) = c.db_role AS owned_by_role,
	   shobj_description(d.oid, 'pg_database') = 'medpro clinic ' || c.id || ' of regress_lifecycle' AS marked,
	   has_database_privilege(c.db_role, d.datname, 'CONNECT') AS can_connect,
	   has_database_privilege('regress_op', d.datname, 'CONNECT') AS operator_can_connect
  FROM medpro.clinics c JOIN pg_database d ON d.datname = c.db_name WHERE c.id = :'s';
SELECT in_clinic(:'s', 'SELECT country FROM medpro_settings') AS settings;
BEGIN;
SET LOCAL ROLE regress_op;
SELECT medpro_register_clinic('Lifecycle rolled back', 'FR', 'admin@rolledback.test', 'Lifecycle pass 2026') IS NOT NULL AS registered;
ROLLBACK;
SELECT spares(), (SELECT count(*) FROM medpro.clinics WHERE name = 'Lifecycle rolled back') AS rows;
SET ROLE regress_op;
SELECT medpro_fill_spare_pool(1) AS ready;
SELECT medpro_add_migration(1011, 'noop', 'SELECT 1');
RESET ROLE;
SELECT spares();
SET ROLE regress_op;
SELECT problem, action FROM medpro_repair();
SELECT medpro_fill_spare_pool(1) AS ready;
RESET ROLE;
SELECT spares();
-- A run holds no lock once it returns, not even in an open transaction: the
-- template's lock is released once it is up to date, so registrations do not
-- wait for a long rollout, and each clinic's lock once it is done.
BEGIN;
SET LOCAL ROLE regress_op;
SET LOCAL client_min_messages = warning;
SELECT status, count(*) FROM medpro_migrate_all() GROUP BY 1 ORDER BY 1;
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;

\c contrib_regression
