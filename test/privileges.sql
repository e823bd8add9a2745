-- pgTAP: the privilege model of DESIGN §4, asserted object by object.
--
-- For medpro_api, medpro_operator, PUBLIC and every clinic role of this
-- central database: exactly which functions, relations, columns, schemas,
-- foreign-data wrappers, servers, user mappings and databases each may
-- use.  Every SECURITY DEFINER function (and every SQL or PL/pgSQL one)
-- pins search_path; objects planted in a schema the caller controls never
-- hijack a medpro function (the CVE-2018-1058 shape).  The expected lists
-- are exact on purpose: a new function or grant must be added here
-- deliberately.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(58);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_app') THEN
		CREATE ROLE tap_app LOGIN;
		GRANT medpro_api TO tap_app;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_op') THEN
		CREATE ROLE tap_op LOGIN;
		GRANT medpro_operator TO tap_op;
	END IF;
END $$;

-- One provisioned clinic, so that a clinic role and database exist.
SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_register_clinic('Priv Clinic', 'FR', 'admin@priv.test', 'tap rights pass 2026') AS priv_clinic \gset
SELECT db_name AS priv_clinic_db FROM medpro.clinics WHERE id = :'priv_clinic' \gset

-- The objects of the extension.
CREATE TEMP VIEW ext_funcs AS
SELECT p.oid, p.oid::regprocedure::text AS sig, p.prosecdef, p.proconfig, l.lanname
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'medpro';
CREATE TEMP VIEW ext_rels AS
SELECT c.oid, c.oid::regclass::text AS rel, c.relkind
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'medpro'
 WHERE c.relkind IN ('r', 'v', 'f', 'S', 'm', 'p');
CREATE TEMP VIEW clinic_roles AS
SELECT c.id, c.db_name, c.db_role FROM medpro.clinics c WHERE c.db_role IS NOT NULL;
GRANT SELECT ON ext_funcs, ext_rels, clinic_roles TO PUBLIC;

-- Roles. ----------------------------------------------------------------------
SELECT is((SELECT count(*) FROM pg_roles WHERE rolname IN ('medpro_api', 'medpro_operator')
			AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb AND NOT rolcanlogin
			AND NOT rolreplication AND NOT rolbypassrls), 2::bigint,
	'medpro_api and medpro_operator: NOLOGIN, no superuser, createrole, createdb, replication or bypassrls');
SELECT is((SELECT count(*) FROM pg_auth_members m WHERE m.member IN
			('medpro_api'::regrole, 'medpro_operator'::regrole)), 0::bigint,
	'medpro_api and medpro_operator are members of no role');
SELECT cmp_ok((SELECT count(*) FROM clinic_roles), '>=', 1::bigint, 'at least one clinic role to check');
SELECT is((SELECT array_agg(r.rolname) FROM clinic_roles cr JOIN pg_roles r ON r.rolname = cr.db_role
			WHERE r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
			   OR r.rolinherit OR NOT r.rolcanlogin), NULL,
	'clinic roles: LOGIN NOINHERIT, no superuser, createrole, createdb, replication or bypassrls');
SELECT is((SELECT array_agg(cr.db_role) FROM clinic_roles cr JOIN pg_auth_members m
			ON m.member = cr.db_role::regrole OR m.roleid = cr.db_role::regrole), NULL,
	'clinic roles are members of no role and have no members');

-- Functions. ------------------------------------------------------------------
SELECT set_eq($$SELECT sig FROM ext_funcs WHERE has_function_privilege('public', oid, 'EXECUTE')$$,
	ARRAY['medpro_jwt_sign(jsonb,bytea,text,text)', 'medpro_jwt_sign(jsonb,text,text,text)',
		  'medpro_jwt_verify(text,bytea,text,timestamp with time zone)',
		  'medpro_jwt_verify(text,text,text,timestamp with time zone)',
		  'medpro_jwt_decode(text,bytea,text,timestamp with time zone)',
		  'medpro_jwt_decode(text,text,text,timestamp with time zone)',
		  'medpro_jwt_cache_stats()', 'medpro_jwt_cache_reset()',
		  'medpro_valid_business_number(text,text)', 'medpro_valid_vat_number(text)',
		  'medpro_valid_ssn(text,text)'],
	'PUBLIC may execute only the pure JWT, JWT-cache and identifier-check functions');
SELECT set_eq($$SELECT sig FROM ext_funcs WHERE has_function_privilege('medpro_api', oid, 'EXECUTE')
				AND NOT has_function_privilege('public', oid, 'EXECUTE')$$,
	ARRAY['medpro_login(text,text)', 'medpro_authenticate(text,boolean)', 'medpro_pre_request()',
		  'medpro_jwks()',
		  'medpro_current_clinic()', 'medpro_current_user_id()', 'medpro_current_role()',
		  'medpro_reset()', 'medpro_create_user(text,text,text,text,text,uuid)',
		  'medpro_revoke_tokens(uuid)', 'medpro_change_password(text,text)',
		  'medpro_set_user_active(uuid,boolean)',
		  'medpro_register_clinic(text,text,text,text,text,text,text,text,jsonb,text,text,text)',
		  'medpro_provision_clinic(uuid)', 'medpro_free_slots(uuid,date,interval)',
		  'medpro_patient_export(uuid)', 'medpro_consent_sign(uuid,uuid,text,text,boolean)',
		  'medpro_patient_erase(uuid,text)',
		  'medpro_suspend_clinic(uuid,text)', 'medpro_reactivate_clinic(uuid)',
		  'medpro_drop_clinic(uuid,text)'],
	'medpro_api may execute exactly the auth, context, user, clinic-domain and super_admin lifecycle functions (each checks the context inside)');
SELECT set_eq($$SELECT sig FROM ext_funcs WHERE has_function_privilege('medpro_operator', oid, 'EXECUTE')
				AND NOT has_function_privilege('medpro_api', oid, 'EXECUTE')$$,
	ARRAY['medpro_key_rotate(text)', 'medpro_key_retire(text)', 'medpro_create_super_admin(text,text)',
		  'medpro_migrate_clinic(uuid,integer)', 'medpro_repair()', 'medpro.database_size(name)',
		  'medpro.connections_internal()', 'medpro.master_key_status()',
		  'medpro_audit_verify(uuid)', 'medpro_audit_prune(interval)',
		  'medpro_rotate_clinic_key(uuid,integer)',
		  'medpro_migrate_all(integer)', 'medpro_add_migration(integer,text,text)',
		  'medpro_refresh_relations()', 'medpro_fill_spare_pool(integer)'],
	'medpro_operator may execute exactly these functions beyond medpro_api''s');
SELECT is((SELECT array_agg(sig) FROM ext_funcs f WHERE sig LIKE 'medpro.%'
			AND has_function_privilege('medpro_api', f.oid, 'EXECUTE')), NULL,
	'medpro_api may execute no internal medpro.* function');
SELECT is((SELECT array_agg(cr.db_role || ':' || f.sig) FROM clinic_roles cr, ext_funcs f
			WHERE has_function_privilege(cr.db_role, f.oid, 'EXECUTE')
			  AND NOT has_function_privilege('public', f.oid, 'EXECUTE')), NULL,
	'clinic roles may execute nothing beyond PUBLIC');
SELECT is((SELECT array_agg(sig) FROM ext_funcs WHERE prosecdef
			AND NOT coalesce(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)), NULL,
	'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is((SELECT array_agg(sig) FROM ext_funcs WHERE lanname IN ('sql', 'plpgsql')
			AND NOT coalesce(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)), NULL,
	'every SQL and PL/pgSQL function of the extension pins search_path');
SELECT cmp_ok((SELECT count(*) FROM ext_funcs WHERE prosecdef), '>=', 10::bigint,
	'the SECURITY DEFINER check saw the privileged functions');
-- Dynamic SQL in PL/pgSQL: only format() with %I / %L, never concatenation.
-- %s is allowed in messages, and in the executed SQL of one function only:
-- medpro_refresh_relations() splices column lists built with quote_ident()
-- and %I, and type names from format_type(), which no %I can quote.
SELECT is((SELECT array_agg(sig) FROM ext_funcs f JOIN pg_proc p ON p.oid = f.oid
			WHERE f.lanname = 'plpgsql'
			  AND (p.prosrc ~* 'EXECUTE\s+[^;]*\|\|' OR p.prosrc ~* 'autonomous\([^;]*\|\|'
				   OR (p.prosrc ~* '(EXECUTE|autonomous\()\s*format\(\s*''[^'']*%s'
					   AND f.sig <> 'medpro_refresh_relations()'))), NULL,
	'PL/pgSQL functions build dynamic SQL only with format() %I / %L');
SELECT is((SELECT array_agg(sig) FROM ext_funcs f JOIN pg_proc p ON p.oid = f.oid
			WHERE f.lanname = 'c' AND p.prosecdef AND p.proowner <> (SELECT extowner FROM pg_extension WHERE extname = 'medpro')), NULL,
	'SECURITY DEFINER functions belong to the extension owner');

-- dblink: installed, and closed to everyone but superusers.
SELECT is((SELECT array_agg(p.oid::regprocedure::text) FROM pg_proc p
			JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
			JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'
			WHERE has_function_privilege('medpro_api', p.oid, 'EXECUTE')
			   OR has_function_privilege('medpro_operator', p.oid, 'EXECUTE')
			   OR has_function_privilege('public', p.oid, 'EXECUTE')), NULL,
	'no dblink function is executable by medpro_api, medpro_operator or PUBLIC');
SELECT is((SELECT array_agg(cr.db_role) FROM clinic_roles cr, pg_proc p
			WHERE p.proname = 'dblink_connect' AND has_function_privilege(cr.db_role, p.oid, 'EXECUTE')), NULL,
	'no clinic role may execute dblink_connect');

-- Relations and columns. -----------------------------------------------------
SELECT set_eq($$SELECT rel || ':' || priv FROM ext_rels,
				unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
				WHERE relkind <> 'S' AND has_table_privilege('medpro_api', oid, priv)$$,
	$$SELECT 'clinic.' || t || ':' || priv
		FROM unnest(ARRAY['patients', 'practitioners', 'appointments', 'appointment_items',
						  'product_services', 'categories', 'product_categories', 'documents',
						  'consents', 'consent_templates']) AS t,
			 unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS priv$$,
	'medpro_api: SELECT, INSERT, UPDATE, DELETE on the clinic.* views and nothing else');
SELECT is((SELECT array_agg(rel) FROM ext_rels WHERE relkind = 'S'
			AND (has_sequence_privilege('medpro_api', oid, 'USAGE') OR has_sequence_privilege('medpro_api', oid, 'SELECT')
				 OR has_sequence_privilege('medpro_api', oid, 'UPDATE'))), NULL,
	'medpro_api may use no sequence');
SELECT is((SELECT array_agg(rel || ':' || priv) FROM ext_rels,
			unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
			WHERE has_table_privilege('public', oid, priv)), NULL,
	'PUBLIC has no privilege on any relation of the extension');
SELECT is((SELECT array_agg(cr.db_role || ':' || rel) FROM clinic_roles cr, ext_rels,
			unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS priv
			WHERE has_table_privilege(cr.db_role, ext_rels.oid, priv)), NULL,
	'clinic roles have no privilege on any central relation');
SELECT set_eq($$SELECT rel FROM ext_rels WHERE has_table_privilege('medpro_operator', oid, 'SELECT')$$,
	ARRAY['medpro.migrations', 'medpro.clinic_migrations', 'medpro.audit_trail', 'medpro.country_defaults',
		  'medpro.consent_template_defaults', 'medpro.clinic_status', 'medpro.connections',
		  'medpro.retention_policies', 'medpro.clinic_migration_history'],
	'medpro_operator reads exactly these whole relations');
SELECT is((SELECT array_agg(rel || ':' || priv) FROM ext_rels,
			unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
			WHERE has_table_privilege('medpro_operator', oid, priv)
			   OR has_any_column_privilege('medpro_operator', oid, 'INSERT')
			   OR has_any_column_privilege('medpro_operator', oid, 'UPDATE')), NULL,
	'medpro_operator writes no relation directly (only through functions)');
-- Secret columns: nobody but the owner.
SELECT is((SELECT array_agg(r || ':' || t || '.' || c) FROM
			unnest(ARRAY['medpro_api', 'medpro_operator', 'public']) AS r,
			(VALUES ('medpro.users', 'password_hash'), ('medpro.keys', 'secret_sealed'),
					('medpro.clinics', 'db_password_sealed'), ('medpro.servers', 'conninfo_sealed'),
					('medpro.audit_log', 'old_data'), ('medpro.audit_log', 'row_hash'),
					('medpro.clinic_keys', 'key_sealed'),
					('medpro.audit_heads', 'head_hash'), ('medpro.audit_checkpoints', 'signature'),
					('medpro.audit_log', 'new_data')) AS s(t, c)
			WHERE has_column_privilege(r, t, c, 'SELECT')), NULL,
	'no one but the owner reads password hashes, key material, sealed credentials or audit data');
SELECT is((SELECT array_agg(cr.db_role) FROM clinic_roles cr
			WHERE has_column_privilege(cr.db_role, 'medpro.users', 'password_hash', 'SELECT')
			   OR has_column_privilege(cr.db_role, 'medpro.clinics', 'db_password_sealed', 'SELECT')), NULL,
	'clinic roles read no secret column');

-- Every central table refuses medpro_api, whatever the row.
CREATE TEMP TABLE tap_readable (rel text);
GRANT INSERT ON tap_readable TO tap_app;
SET ROLE tap_app;
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT rel FROM ext_rels WHERE rel LIKE 'medpro.%' AND relkind IN ('r', 'v', 'f', 'm', 'p') LOOP
		BEGIN
			EXECUTE format('SELECT 1 FROM %s LIMIT 1', r.rel);
			INSERT INTO tap_readable VALUES (r.rel);
		EXCEPTION WHEN insufficient_privilege THEN NULL;
		END;
	END LOOP;
END $$;
RESET ROLE;
SELECT is((SELECT array_agg(rel) FROM tap_readable), NULL, 'medpro_api can read no medpro.* relation');
SELECT cmp_ok((SELECT count(*) FROM ext_rels WHERE rel LIKE 'medpro.%'), '>=', 15::bigint,
	'the read check saw the catalog');

-- Schemas. --------------------------------------------------------------------
SELECT is((SELECT array_agg(n.nspname || ':' || r) FROM pg_namespace n,
			unnest(ARRAY['medpro_api', 'medpro_operator', 'public']) AS r
			WHERE n.nspname IN ('medpro', 'clinic', 'public') AND has_schema_privilege(r, n.oid, 'CREATE')), NULL,
	'medpro_api, medpro_operator and PUBLIC create nothing in medpro, clinic or public');
SELECT set_eq($$SELECT n.nspname FROM pg_namespace n WHERE n.nspname IN ('medpro', 'clinic')
				AND has_schema_privilege('medpro_api', n.oid, 'USAGE')$$,
	ARRAY['medpro', 'clinic'], 'medpro_api uses schemas medpro (names only) and clinic');
SELECT is((SELECT array_agg(n.nspname) FROM pg_namespace n WHERE n.nspname IN ('medpro', 'clinic')
			AND has_schema_privilege('public', n.oid, 'USAGE')), NULL, 'PUBLIC has no USAGE on medpro or clinic');
SELECT is((SELECT array_agg(n.nspname) FROM pg_namespace n WHERE n.nspname = 'clinic'
			AND has_schema_privilege('medpro_operator', n.oid, 'USAGE')), NULL,
	'medpro_operator has no USAGE on clinic (operators do not read clinic data)');

-- Foreign-data wrappers, servers, user mappings. -------------------------------
SELECT is((SELECT array_agg(w.fdwname || ':' || r) FROM pg_foreign_data_wrapper w,
			unnest(ARRAY['medpro_api', 'medpro_operator', 'public']) AS r
			WHERE has_foreign_data_wrapper_privilege(r, w.oid, 'USAGE')), NULL,
	'no foreign-data wrapper (medpro_fdw, dblink_fdw, any other) is usable by medpro_api, medpro_operator or PUBLIC');
SELECT is((SELECT array_agg(s.srvname || ':' || r) FROM pg_foreign_server s,
			unnest(ARRAY['medpro_api', 'medpro_operator', 'public']) AS r
			WHERE has_server_privilege(r, s.oid, 'USAGE')), NULL,
	'no foreign server is usable by medpro_api, medpro_operator or PUBLIC');
SELECT is((SELECT count(*) FROM pg_user_mappings um JOIN pg_foreign_server s ON s.oid = um.srvid
			WHERE s.srvname = 'medpro_clinics'), 0::bigint, 'medpro_clinics has no user mapping');
SELECT is((SELECT array_agg(cr.db_role) FROM clinic_roles cr, pg_foreign_data_wrapper w
			WHERE has_foreign_data_wrapper_privilege(cr.db_role, w.oid, 'USAGE')), NULL,
	'clinic roles may use no foreign-data wrapper');

CREATE SCHEMA IF NOT EXISTS tap_scratch;
GRANT USAGE, CREATE ON SCHEMA tap_scratch TO tap_app;
SET ROLE tap_app;
SELECT throws_ok('CREATE FOREIGN TABLE tap_scratch.ft (id uuid) SERVER medpro_clinics', '42501', NULL,
	'medpro_api cannot create a foreign table on medpro_clinics');
SELECT throws_ok($$CREATE FOREIGN TABLE tap_scratch.ft2 (id uuid) SERVER medpro_clinics OPTIONS (table_name 'patients')$$, '42501', NULL,
	'... nor one that names a clinic table');
SELECT throws_ok('CREATE USER MAPPING FOR tap_app SERVER medpro_clinics', '42501', NULL,
	'medpro_api cannot create a user mapping on medpro_clinics');
SELECT throws_ok('CREATE SERVER tap_srv FOREIGN DATA WRAPPER medpro_fdw', '42501', NULL,
	'medpro_api cannot create a server with medpro_fdw');
SELECT throws_ok('CREATE SERVER tap_srv2 FOREIGN DATA WRAPPER dblink_fdw', '42501', NULL,
	'medpro_api cannot create a server with dblink_fdw');
SELECT throws_ok('SELECT * FROM medpro.ft_patients', '42501', NULL, 'medpro_api cannot read a foreign table directly');
SELECT throws_ok($$SELECT dblink_connect('dbname=postgres')$$, '42501', NULL, 'medpro_api cannot call dblink_connect');
SELECT throws_ok($$SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)$$, '42501', NULL, 'medpro_api cannot call dblink');
SELECT throws_ok($$SELECT dblink_connect_u('dbname=postgres')$$, '42501', NULL, 'medpro_api cannot call dblink_connect_u');
SELECT throws_ok('SELECT medpro.autonomous($x$SELECT 1$x$)', '42501', NULL, 'medpro_api cannot run autonomous SQL');
SELECT throws_ok('CREATE EXTENSION postgres_fdw SCHEMA tap_scratch', '42501', NULL,
	'medpro_api cannot install another foreign-data wrapper');
RESET ROLE;

-- Databases. ------------------------------------------------------------------
SELECT is((SELECT array_agg(cr.db_name || ':' || r) FROM clinic_roles cr,
			unnest(ARRAY['medpro_api', 'medpro_operator', 'public', 'tap_app', 'tap_op']) AS r
			WHERE has_database_privilege(r, cr.db_name, 'CONNECT') OR has_database_privilege(r, cr.db_name, 'TEMPORARY')
			   OR has_database_privilege(r, cr.db_name, 'CREATE')), NULL,
	'no one but its own role may connect to a clinic database');
SELECT is((SELECT array_agg(a.db_role || '->' || b.db_name) FROM clinic_roles a, clinic_roles b
			WHERE a.id <> b.id AND has_database_privilege(a.db_role, b.db_name, 'CONNECT')), NULL,
	'a clinic role cannot connect to another clinic''s database');
SELECT is((SELECT array_agg(d.datname) FROM pg_database d WHERE d.datname LIKE 'medpro\_template\_%' AND d.datallowconn), NULL,
	'the template database accepts no connections');
-- A real connection attempt as the application's login, over the socket.
CREATE FUNCTION pg_temp.connect_error(conninfo text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d text;
BEGIN
	PERFORM dblink_connect('tap_try', conninfo);
	PERFORM dblink_disconnect('tap_try');
	RETURN 'connected';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN d;
END $$;
SELECT matches(pg_temp.connect_error(format('host=%s port=%s dbname=%s user=tap_app',
		   split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), :'priv_clinic_db')),
	'permission denied for database', 'the application login is refused by the clinic database');

-- CVE-2018-1058: objects planted in a schema the caller controls. -------------
-- tap_app owns tap_scratch and puts it first, before pg_catalog.
SET ROLE tap_app;
CREATE FUNCTION tap_scratch.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'planted'::text $$;
CREATE FUNCTION tap_scratch.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'infinity'::timestamptz $$;
CREATE FUNCTION tap_scratch.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'infinity'::timestamptz $$;
CREATE FUNCTION tap_scratch.evil_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS
	$$ DECLARE c text; BEGIN GET DIAGNOSTICS c = PG_CONTEXT; INSERT INTO tap_scratch.hits VALUES (current_user, c); RETURN true; END $$;
CREATE FUNCTION tap_scratch.evil_eq_int(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
	$$ DECLARE c text; BEGIN GET DIAGNOSTICS c = PG_CONTEXT; INSERT INTO tap_scratch.hits VALUES (current_user, c); RETURN true; END $$;
CREATE FUNCTION tap_scratch.evil_eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ DECLARE c text; BEGIN GET DIAGNOSTICS c = PG_CONTEXT; INSERT INTO tap_scratch.hits VALUES (current_user, c); RETURN true; END $$;
CREATE TABLE tap_scratch.hits (who name, ctx text);
GRANT INSERT ON tap_scratch.hits TO PUBLIC;
CREATE OPERATOR tap_scratch.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = tap_scratch.evil_eq);
CREATE OPERATOR tap_scratch.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = tap_scratch.evil_eq_int);
CREATE OPERATOR tap_scratch.= (LEFTARG = text, RIGHTARG = text, FUNCTION = tap_scratch.evil_eq_text);
CREATE TABLE tap_scratch.users (id uuid, clinic_id uuid, email text, password_hash text, role text);
CREATE FUNCTION tap_scratch.medpro_reset() RETURNS void LANGUAGE plpgsql AS
	$$ DECLARE c text; BEGIN GET DIAGNOSTICS c = PG_CONTEXT; INSERT INTO tap_scratch.hits VALUES (current_user, c); END $$;
RESET ROLE;
CREATE TEMP TABLE tap_cve (step text, outcome text);
GRANT INSERT, SELECT ON tap_cve TO tap_app;
SET ROLE tap_app;
-- pgTAP itself would use the planted operators: the attempts record their
-- outcome (a SQLSTATE or a value) and are checked afterwards.
SET search_path = tap_scratch, public, pg_catalog;
SELECT medpro_login('admin@priv.test', 'tap rights pass 2026') AS priv_tok \gset
DO $$
DECLARE
	st text;
BEGIN
	BEGIN
		PERFORM medpro_login('admin@priv.test', 'a wrong password');
		st := 'succeeded';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
	END;
	INSERT INTO pg_temp.tap_cve VALUES ('wrong password', st);
	BEGIN
		PERFORM medpro_login('nobody@priv.test', 'a wrong password');
		st := 'succeeded';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
	END;
	INSERT INTO pg_temp.tap_cve VALUES ('unknown email', st);
	BEGIN
		PERFORM medpro_revoke_tokens(gen_random_uuid());
		st := 'succeeded';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
	END;
	INSERT INTO pg_temp.tap_cve VALUES ('revoke unknown user', st);
	PERFORM medpro_pre_request();
END $$;
SELECT medpro_authenticate(:'priv_tok', true) IS NOT NULL AS session_set \gset
BEGIN;
INSERT INTO pg_temp.tap_cve SELECT 'session recheck', medpro_current_clinic()::text;
INSERT INTO pg_temp.tap_cve SELECT 'clinic.patients', count(*)::text FROM clinic.patients;
COMMIT;
-- a write: clinic data key, encryption, audit row, chain link at commit (the
-- test's own comparisons name pg_catalog's =: an unqualified one would be
-- the planted operator, the client's own choice)
BEGIN;
INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Cve', 'Planted', '185057512345673');
UPDATE clinic.patients SET notes = 'seen' WHERE social_security_number OPERATOR(pg_catalog.=) '185057512345673';
COMMIT;
BEGIN;
INSERT INTO pg_temp.tap_cve SELECT 'write', string_agg(notes, ',') FROM clinic.patients WHERE social_security_number OPERATOR(pg_catalog.=) '185057512345673';
COMMIT;
RESET search_path;
SELECT medpro_reset();
RESET ROLE;
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'wrong password'), '28P01',
	'planted lower(), =, clock_timestamp() do not make a wrong password pass');
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'unknown email'), '28P01', '... nor an unknown email');
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'revoke unknown user'), '42501',
	'revoke_tokens without a context is refused under the planted search_path');
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'session recheck'), :'priv_clinic',
	'the session context is rechecked in a new transaction under the planted search_path');
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'clinic.patients'), '0',
	'clinic.* works under the planted search_path');
SELECT is((SELECT outcome FROM tap_cve WHERE step = 'write'), 'seen',
	'writes (encryption, blind index, audit, chain) work under the planted search_path');
SELECT is((SELECT valid FROM medpro_audit_verify(:'priv_clinic')), true, '... and the audit chain they extended verifies');
SELECT is((SELECT array_agg(DISTINCT who) FROM tap_scratch.hits), NULL,
	'no planted operator or function ran inside a medpro function');

DROP SCHEMA tap_scratch CASCADE;
SELECT * FROM finish();
