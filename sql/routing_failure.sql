--
-- routing_failure: a clinic database that goes away, a schema that falls
-- behind, concurrent writers, switching clinics inside a transaction, a
-- slow clinic and statement_timeout, and the connection cache's bound.
-- Uses the clinics and users made by routing.sql.
--
SELECT id AS ca, db_role AS role_a, db_name AS db_a FROM medpro.clinics WHERE name = 'Routage A' \gset
SELECT id AS cb FROM medpro.clinics WHERE name = 'Enrutado B' \gset
SET ROLE regress_app;
SELECT medpro_login('doc@rt-a.test', 'routing doctor a1') AS a_doc \gset
SELECT medpro_login('doc@rt-b.test', 'routing doctor b1') AS b_doc \gset
RESET ROLE;

-- The clinic's login is refused: 08006 without connection details; the
-- other clinic is unaffected; the same backend recovers.
ALTER ROLE :"role_a" NOLOGIN;
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS authenticated;
SELECT count(*) AS clinic_b_still_works FROM clinic.consent_templates;
COMMIT;
RESET ROLE;
ALTER ROLE :"role_a" LOGIN;
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT count(*) > 0 AS clinic_a_back FROM clinic.patients;
COMMIT;
RESET ROLE;

-- The clinic's backend dies between transactions (server restart, idle
-- timeout): the cached connection is replaced at the next transaction.
SELECT count(*) AS routing_backends_killed
  FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE datname = :'db_a' AND application_name = 'medpro routing') t;
SELECT pg_sleep(0.2);
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT count(*) > 0 AS reconnected FROM clinic.patients;
COMMIT;
RESET ROLE;

-- The database refuses connections altogether.
ALTER DATABASE :"db_a" WITH ALLOW_CONNECTIONS false;
SELECT count(*) AS routing_backends_killed
  FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE datname = :'db_a' AND application_name = 'medpro routing') t;
SELECT pg_sleep(0.2);
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
COMMIT;
RESET ROLE;
ALTER DATABASE :"db_a" WITH ALLOW_CONNECTIONS true;

-- A schema behind what the central relations expect: 55000.
INSERT INTO medpro.migrations (version, name, sql, source) VALUES (1000, 'not yet applied', 'SELECT 1', 'operator');
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
COMMIT;
RESET ROLE;
DELETE FROM medpro.migrations WHERE version = 1000;

-- Once a transaction worked on one clinic, it cannot switch to another.
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT count(*) > 0 AS used_clinic_a FROM clinic.patients;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'b_doc'));
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS same_clinic_again_is_fine;
COMMIT;

-- READ COMMITTED: two concurrent updates of one row wait for each other
-- instead of failing with 40001.
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT id AS pid FROM clinic.patients ORDER BY created_at LIMIT 1 \gset
COMMIT;
RESET ROLE;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=regress_app',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database()));
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
UPDATE clinic.patients SET notes = 'first writer' WHERE id = :'pid';
RESET ROLE;
SELECT dblink_send_query('other', format($$BEGIN; SELECT medpro_authenticate(%L);
	UPDATE clinic.patients SET notes = notes || ', second writer' WHERE id = %L; COMMIT$$, :'a_doc', :'pid'));
SELECT pg_sleep(0.5);
SELECT dblink_is_busy('other') AS second_writer_waits;
SET ROLE regress_app;
COMMIT;
RESET ROLE;
SELECT * FROM dblink_get_result('other') AS t(result text);
SELECT dblink_disconnect('other');
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT notes FROM clinic.patients WHERE id = :'pid';
COMMIT;
RESET ROLE;

-- Waiting on a slow clinic honours statement_timeout: another session holds
-- the row lock, the UPDATE waits, the timeout cancels it, and the next
-- transaction works.
SELECT dblink_connect('holder', format('host=%s port=%s dbname=%s user=regress_app',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database()));
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder', format('SELECT medpro_authenticate(%L) IS NOT NULL', :'a_doc')) AS t(ok boolean);
SELECT dblink_exec('holder', format($$UPDATE clinic.patients SET notes = 'held' WHERE id = %L$$, :'pid'));
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SET LOCAL statement_timeout = '1s';
-- terse: the clinic's own timeout may fire first and add its CONTEXT line
\set VERBOSITY terse
UPDATE clinic.patients SET notes = 'waited' WHERE id = :'pid';
\set VERBOSITY default
ROLLBACK;
RESET ROLE;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT dblink_disconnect('holder');
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT notes FROM clinic.patients WHERE id = :'pid';
COMMIT;

-- The connection cache keeps at most medpro.max_cached_connections.
SET medpro.max_cached_connections = 1;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS authenticated;
SELECT count(*) > 0 AS used_a FROM clinic.consent_templates;
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS authenticated;
SELECT count(*) > 0 AS used_b FROM clinic.consent_templates;
COMMIT;
RESET ROLE;
SELECT count(*) AS cached, bool_and(clinic_id = :'cb') AS only_b FROM medpro.connections;
RESET medpro.max_cached_connections;
