--
-- provision: clinic databases cloned from the template, all or nothing.
--
-- Objects this central database owns on the server, for before/after counts.
CREATE FUNCTION pg_temp.owned() RETURNS text LANGUAGE sql AS $$
	SELECT format('clinics=%s databases=%s roles=%s',
		(SELECT count(*) FROM medpro.clinics),
		(SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'medpro clinic % of ' || current_database()),
		(SELECT count(*) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE 'medpro clinic % of ' || current_database()))
$$;
-- Run a query in a clinic database as the superuser.
CREATE FUNCTION pg_temp.in_clinic(clinic uuid, query text) RETURNS SETOF record LANGUAGE sql AS $$
	SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'),
								(SELECT db_name FROM medpro.clinics WHERE id = clinic)), query) AS t(v text)
$$;
SELECT pg_temp.owned() AS before \gset

-- Bad input and missing privileges.
SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_register_clinic('', 'FR', 'a@x.test', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_register_clinic(NULL, 'FR', 'a@x.test', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'DE', 'a@x.test', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', NULL, 'a@x.test', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'not an email', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', 'short')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', '')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', 'a long password 1', email => 'nope')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', 'a long password 1', address => '[]')$$);
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', 'a long password 1', server => 'elsewhere')$$);
SELECT regress_try($$SELECT medpro_register_clinic(repeat('x', 201), 'FR', 'a@x.test', 'a long password 1')$$);
RESET ROLE;
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_register_clinic('X', 'FR', 'a@x.test', 'a long password 1')$$);
SELECT regress_try($$SELECT medpro_provision_clinic('aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT medpro_migrate_clinic('aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT * FROM medpro_repair()$$);
SELECT regress_try($$SELECT * FROM medpro.clinic_status$$);
RESET ROLE;
SELECT pg_temp.owned() = :'before' AS nothing_made;

-- Two clinics, a French and a Spanish one.
SET ROLE regress_op;
SELECT medpro_register_clinic('Cabinet Dupont', 'fr', 'admin@dupont.test', 'Lyon cabinet 2026',
	email => 'contact@dupont.test', address => '{"city": "Lyon"}',
	admin_first_name => 'Claire', admin_last_name => 'Dupont') AS fr \gset
SELECT medpro_register_clinic('Clínica Sol', 'ES', 'admin@sol.test', 'Sol clinica 2026',
	email => 'hola@sol.test') AS es \gset
SELECT name, country, status, server, schema_version = latest_version AS at_latest,
	   latest_version >= 9 AS has_nine_migrations, size_bytes > 0 AS has_size,
	   db_name = 'medpro_clinic_' || replace(id::text, '-', '_') AS db_named, last_error
  FROM medpro.clinic_status WHERE id IN (:'fr', :'es') ORDER BY country;
RESET ROLE;
SELECT c.country, d.datname = c.db_name AS db_exists, pg_get_userbyid(d.datdba) = c.db_role AS owned_by_role,
	   r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, c.db_password_sealed IS NOT NULL AS password_sealed,
	   length(c.db_password_sealed) > 29 AS sealed_nonempty
  FROM medpro.clinics c JOIN pg_database d ON d.datname = c.db_name JOIN pg_roles r ON r.rolname = c.db_role
 WHERE c.id IN (:'fr', :'es') ORDER BY 1;
-- The role's password is stored only sealed: the server holds a SCRAM verifier.
SELECT count(*) AS scram_verifiers FROM pg_authid a JOIN medpro.clinics c ON c.db_role = a.rolname
 WHERE c.id IN (:'fr', :'es') AND a.rolpassword LIKE 'SCRAM-SHA-256$%';

-- CONNECT: only the clinic's own role (and superusers).
SELECT c.country,
	   has_database_privilege(c.db_role, c.db_name, 'CONNECT') AS own_role,
	   has_database_privilege(o.db_role, c.db_name, 'CONNECT') AS other_clinic_role,
	   has_database_privilege('regress_app', c.db_name, 'CONNECT') AS medpro_api,
	   has_database_privilege('regress_op', c.db_name, 'CONNECT') AS operator,
	   has_database_privilege('public', c.db_name, 'CONNECT') AS public
  FROM medpro.clinics c JOIN medpro.clinics o ON o.id <> c.id AND o.id IN (:'fr', :'es')
 WHERE c.id IN (:'fr', :'es') ORDER BY 1;

-- And a real connection attempt: as the other clinic's role and as medpro_api.
SELECT who, regexp_replace(regress_try(format('SELECT dblink_connect(%L, %L)', 'probe',
		format('host=%s port=%s dbname=%s user=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
			   current_setting('port'), (SELECT db_name FROM medpro.clinics WHERE id = :'fr'), who_role))),
		'medpro_clinic_[0-9a-f_]+', 'medpro_clinic_<fr>', 'g') AS outcome
  FROM (VALUES ('ES clinic role', (SELECT db_role FROM medpro.clinics WHERE id = :'es')),
			   ('medpro_api login', 'regress_app'),
			   ('FR clinic role', (SELECT db_role FROM medpro.clinics WHERE id = :'fr'))) AS t(who, who_role);
SELECT dblink_disconnect('probe');

-- The full schema at the latest version, and the country defaults.
SELECT * FROM pg_temp.in_clinic(:'fr', $$SELECT string_agg(version::text, ',' ORDER BY version) FROM medpro_schema_migrations$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'fr', $$SELECT string_agg(table_name::text, ', ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'fr', $$SELECT format('%s %s %s %s', clinic_id = medpro_clinic_id(), country, timezone, default_tax_rate) FROM medpro_settings$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'es', $$SELECT format('%s %s %s', country, timezone, default_tax_rate) FROM medpro_settings$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'fr', $$SELECT string_agg(name || ' (' || language || ')', ', ' ORDER BY name) FROM consent_templates$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'es', $$SELECT string_agg(name || ' (' || language || ')', ', ' ORDER BY name) FROM consent_templates$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'es', $$SELECT (SELECT clinic_id FROM medpro_settings) <> (SELECT clinic_id FROM medpro_settings)$$) AS t(v text);
-- The clinic's role may read and write its tables, not change the schema.
SELECT * FROM pg_temp.in_clinic(:'fr', format($$SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) FROM information_schema.role_table_grants WHERE grantee = %L AND table_name = 'patients'$$,
	(SELECT db_role FROM medpro.clinics WHERE id = :'fr'))) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'fr', format($$SELECT has_schema_privilege(%L, 'public', 'CREATE')::text$$,
	(SELECT db_role FROM medpro.clinics WHERE id = :'fr'))) AS t(v text);

-- The admin user exists and can log in to its clinic.
SELECT u.email, u.role, u.first_name, u.clinic_id = :'fr' AS own_clinic FROM medpro.users u
 WHERE u.clinic_id IN (:'fr', :'es') ORDER BY u.email;
SET ROLE regress_app;
SELECT (medpro_authenticate(medpro_login('admin@dupont.test', 'Lyon cabinet 2026')) ->> 'clinic_id') = :'fr' AS fr_admin_logs_in;
RESET ROLE;

-- Provisioning again, and migrating again, are harmless.
SET ROLE regress_op;
SELECT medpro_provision_clinic(:'fr');
SELECT medpro_migrate_clinic(:'fr') = (SELECT max(version) FROM medpro.migrations) AS at_latest;
SELECT regress_try(format('SELECT medpro_migrate_clinic(%L, 100000)', :'fr'));
SELECT regress_try(format('SELECT medpro_migrate_clinic(%L, -1)', :'fr'));
SELECT regress_try($$SELECT medpro_migrate_clinic('99999999-0000-4000-8000-000000000009')$$);
SELECT regress_try($$SELECT medpro_migrate_clinic(NULL)$$);
SELECT regress_try($$SELECT medpro_provision_clinic('99999999-0000-4000-8000-000000000009')$$);
SELECT status, schema_version = latest_version AS at_latest FROM medpro.clinic_status WHERE id = :'fr';
RESET ROLE;
SELECT count(*) AS applied_rows FROM medpro.clinic_migrations WHERE clinic_id = :'fr' AND status = 'applied';

-- A changed migration is refused, Flyway-style, and nothing runs.
UPDATE medpro.migrations SET sql = sql || ' ' WHERE version = 2;
SELECT regress_try(format('SELECT medpro_migrate_clinic(%L)', :'fr'));
UPDATE medpro.migrations SET sql = rtrim(sql, ' ') WHERE version = 2;
SELECT medpro_migrate_clinic(:'fr') = (SELECT max(version) FROM medpro.migrations) AS at_latest_again;

SELECT pg_temp.owned() AS with_two \gset

-- Rolling back the caller's transaction leaves nothing: no row, no role, no database.
BEGIN;
SELECT medpro_register_clinic('Rollback Clinic', 'FR', 'admin@rollback.test', 'rollback secret 1') AS rb \gset
SELECT count(*) AS database_exists_meanwhile FROM pg_database WHERE datname = 'medpro_clinic_' || replace(:'rb', '-', '_');
ROLLBACK;
SELECT pg_temp.owned() = :'with_two' AS nothing_left,
	   (SELECT count(*) FROM pg_database WHERE datname = 'medpro_clinic_' || replace(:'rb', '-', '_')) AS databases,
	   (SELECT count(*) FROM pg_roles WHERE rolname = 'medpro_clinic_' || replace(:'rb', '-', '_')) AS roles,
	   (SELECT count(*) FROM medpro.users WHERE email = 'admin@rollback.test') AS users;
-- Also when only a savepoint is rolled back.
BEGIN;
SAVEPOINT s;
SELECT medpro_register_clinic('Savepoint Clinic', 'FR', 'admin@savepoint.test', 'savepoint secret 1') IS NOT NULL AS registered;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.owned() = :'with_two' AS nothing_left;

-- A failure at each step leaves nothing behind.
SELECT step, regress_try(format($$SET LOCAL medpro.debug_provision_fail = %L; SELECT medpro_register_clinic('Failing %s', 'ES', 'admin-%s@fail.test', 'failing secret 1')$$, step, step, step)) AS outcome,
	   pg_temp.owned() = :'with_two' AS nothing_left
  FROM unnest(ARRAY['start', 'role', 'database', 'grants', 'settings', 'activate']) AS step;

-- Two registrations with one clinic email: the second gets a clean 23505.
SELECT regress_try($$SELECT medpro_register_clinic('Cabinet Bis', 'FR', 'other@dupont.test', 'bis secret pw 12', email => 'CONTACT@dupont.test')$$);
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=postgres',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database()));
BEGIN;
SELECT medpro_register_clinic('Race A', 'FR', 'admin@race-a.test', 'race secret aaaa', email => 'race@clinic.test') IS NOT NULL AS first;
SELECT dblink_send_query('other', $$SELECT medpro_register_clinic('Race B', 'FR', 'admin@race-b.test', 'race secret bbbb', email => 'race@clinic.test')$$);
SELECT pg_sleep(0.5);
COMMIT;
SELECT regress_try($$SELECT * FROM dblink_get_result('other') AS t(id uuid)$$);
SELECT dblink_disconnect('other');
SELECT name FROM medpro.clinics WHERE email = 'race@clinic.test';
SELECT count(*) AS race_b_leftovers FROM medpro.users WHERE email = 'admin@race-b.test';

-- An existing role is never taken over or dropped.
INSERT INTO medpro.clinics (id, name, country, status, server, db_name, db_role) VALUES
	('dddddddd-0000-4000-8000-00000000000d', 'Half-made', 'FR', 'provisioning', 'local',
	 'medpro_clinic_dddddddd_0000_4000_8000_00000000000d', 'medpro_clinic_dddddddd_0000_4000_8000_00000000000d');
CREATE ROLE medpro_clinic_dddddddd_0000_4000_8000_00000000000d;
SELECT regress_try($$SELECT medpro_provision_clinic('dddddddd-0000-4000-8000-00000000000d')$$);
SELECT count(*) AS role_still_there FROM pg_roles WHERE rolname = 'medpro_clinic_dddddddd_0000_4000_8000_00000000000d';
DROP ROLE medpro_clinic_dddddddd_0000_4000_8000_00000000000d;

-- medpro_repair: an orphan database made by hand, and the half-made clinic.
CREATE DATABASE medpro_clinic_eeeeeeee_0000_4000_8000_00000000000e;
SET ROLE regress_op;
SELECT * FROM medpro_repair() ORDER BY 1, 2;
SELECT * FROM medpro_repair() ORDER BY 1, 2;
RESET ROLE;
SELECT count(*) AS orphan_left FROM pg_database WHERE datname = 'medpro_clinic_eeeeeeee_0000_4000_8000_00000000000e';
SELECT status, schema_version = latest_version AS at_latest FROM medpro.clinic_status WHERE id = 'dddddddd-0000-4000-8000-00000000000d';

-- Every lifecycle action is audited.
SELECT action, count(*) FROM medpro.audit_log WHERE action LIKE 'clinic%' OR action = 'repair' GROUP BY 1 ORDER BY 1;

-- A clinic database has the central database's collation and character
-- classification, not the cluster's default (C.UTF-8 here): text
-- comparisons and sorts shipped to the clinic give what they give
-- centrally.  Through the template, and without it (migration replay).
CREATE DATABASE regress_central_c TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';
\c regress_central_c
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
SELECT medpro_register_clinic('Collation One', 'FR', 'admin@coll-one.test', 'collation test one 2026') AS coll_one \gset
SET medpro.clinic_template = off;
SELECT medpro_register_clinic('Collation Two', 'FR', 'admin@coll-two.test', 'collation test two 2026') AS coll_two \gset
RESET medpro.clinic_template;
SELECT c.name, d.datcollate, d.datctype
  FROM medpro.clinics c JOIN pg_database d ON d.datname = c.db_name ORDER BY c.name;
SELECT datcollate, datctype FROM pg_database WHERE datname = 'medpro_template_regress_central_c';
SELECT medpro_drop_clinic(:'coll_one', 'Collation One');
SELECT medpro_drop_clinic(:'coll_two', 'Collation Two');
\c contrib_regression
ALTER DATABASE medpro_template_regress_central_c WITH IS_TEMPLATE false;
DROP DATABASE medpro_template_regress_central_c;
DROP DATABASE regress_central_c;
