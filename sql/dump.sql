--
-- dump: the catalog tables are extension configuration tables, so pg_dump
-- keeps their rows, and a restored database logs users in again.  Runs
-- pg_dump and psql through \! (the test runner sets PGHOST and PGPORT).
--
CREATE DATABASE medpro_regress_dump_src;
CREATE DATABASE medpro_regress_dump_dst;
\c medpro_regress_dump_src
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
RESET client_min_messages;
SELECT medpro_key_rotate() IS NOT NULL AS rotated;
SELECT medpro_create_super_admin('root@dump.test', 'a long password 1') IS NOT NULL AS created;
INSERT INTO medpro.clinics (name, country, status) VALUES ('Dumped clinic', 'FR', 'active');
\! pg_dump -d medpro_regress_dump_src -f "${TMPDIR:-/tmp}/medpro_regress_dump.sql" && psql -X -q -v ON_ERROR_STOP=1 -d medpro_regress_dump_dst -f "${TMPDIR:-/tmp}/medpro_regress_dump.sql" > /dev/null 2>&1 && echo restored; rm -f "${TMPDIR:-/tmp}/medpro_regress_dump.sql"
\c medpro_regress_dump_dst
SELECT (SELECT count(*) FROM medpro.users) AS users, (SELECT count(*) FROM medpro.keys) AS keys,
	   (SELECT string_agg(name, ',') FROM medpro.clinics) AS clinics,
	   (SELECT string_agg(name, ',') FROM medpro.servers) AS servers,
	   (SELECT count(*) FROM medpro.migrations) AS migrations,
	   (SELECT count(*) > 0 FROM medpro.audit_log) AS audit_kept;
SELECT medpro_authenticate(medpro_login('root@dump.test', 'a long password 1')) ->> 'email' AS logs_in_after_restore;
-- The audit chains come back as they were, and keep growing.
SELECT bool_and(valid) AS audit_chains_valid, count(*) > 0 AS chains FROM medpro_audit_verify();
\c postgres
DROP DATABASE medpro_regress_dump_src;
DROP DATABASE medpro_regress_dump_dst;
