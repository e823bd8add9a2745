-- pgTAP: the attack suite.  Every test is one attempt to cross from clinic
-- A to clinic B (or to act without a verified token); each must fail.
--
-- Two provisioned clinics, each with an admin, a doctor and a secretary,
-- and patients whose names mark their clinic.  Attempts run as tap_app, a
-- login with only medpro_api (the internet, in the threat model of
-- docs/security.md).  Every error an attempt raises is kept in tap_errors
-- and checked at the end for another clinic's data.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(64);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_app') THEN
		CREATE ROLE tap_app LOGIN;
		GRANT medpro_api TO tap_app;
	END IF;
END $$;

SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_register_clinic('Atk Alpha', 'FR', 'admin@atk-a.test', 'alpha chief secret 1') AS ca \gset
SELECT medpro_register_clinic('Atk Bravo', 'ES', 'admin@atk-b.test', 'bravo chief secret 1') AS cb \gset
SELECT medpro_create_user('doc@atk-a.test', 'alpha doctor secret', 'doctor', 'Ada', 'Alpha', :'ca') AS doc_a \gset
SELECT medpro_create_user('sec@atk-a.test', 'alpha frontdesk secret', 'secretary', 'Sid', 'Alpha', :'ca') AS sec_a \gset
SELECT medpro_create_user('doc@atk-b.test', 'bravo doctor secret', 'doctor', 'Bob', 'Bravo', :'cb') AS doc_b \gset
SELECT medpro_create_user('gone@atk-a.test', 'alpha leaver secret', 'doctor', 'Gus', 'Alpha', :'ca') AS gone_a \gset
SELECT db_name AS db_b FROM medpro.clinics WHERE id = :'cb' \gset

-- Helpers: rows a statement touched, and the error it raised (kept).
CREATE TEMP TABLE tap_errors (attempt text, sqlstate text, message text, detail text, hint text);
GRANT ALL ON tap_errors TO PUBLIC;
CREATE FUNCTION pg_temp.affected(stmt text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE stmt;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	INSERT INTO pg_temp.tap_errors VALUES (left(stmt, 200), st, msg, det, hnt);
	RETURN st;
END $$;
-- The JWT secret of the active key, to forge tokens a key holder could make.
SELECT kid AS kid, encode(medpro.unseal(secret_sealed, 'medpro.keys:' || kid), 'hex') AS key_hex
  FROM medpro.keys WHERE status = 'active' \gset

SET ROLE tap_app;
SELECT medpro_login('admin@atk-a.test', 'alpha chief secret 1') AS a_admin \gset
SELECT medpro_login('doc@atk-a.test', 'alpha doctor secret') AS a_doc \gset
SELECT medpro_login('sec@atk-a.test', 'alpha frontdesk secret') AS a_sec \gset
SELECT medpro_login('admin@atk-b.test', 'bravo chief secret 1') AS b_admin \gset
SELECT medpro_login('doc@atk-b.test', 'bravo doctor secret') AS b_doc \gset
SELECT medpro_login('gone@atk-a.test', 'alpha leaver secret') AS a_gone \gset

-- Data: each clinic's patients carry its name.
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS b;
INSERT INTO clinic.patients (first_name, last_name, patient_number, notes)
VALUES ('Bravo', 'Secretpatient', 'P-B-0001', 'bravo private note') RETURNING id AS b_pat \gset
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
INSERT INTO clinic.patients (first_name, last_name, patient_number)
VALUES ('Alpha', 'Patient', 'P-A-0001') RETURNING id AS a_pat \gset
COMMIT;

-- 1. Forged claims through settings. -------------------------------------------
SELECT is(pg_temp.err($$SET medpro.clinic_id = '$$ || :'cb' || $$'$$), '42602', 'SET medpro.clinic_id is refused');
SELECT is(pg_temp.err(format('SELECT set_config(%L, %L, false)', 'medpro.tenant_clinic', :'cb')), '42602',
	'set_config(medpro.*) is refused');
SELECT lives_ok(format($$SELECT set_config('request.jwt.claims', %L, false)$$,
	json_build_object('clinic_id', :'cb', 'role', 'admin', 'sub', :'doc_b')::text), 'request.jwt.claims can be set (PostgREST would)');
SELECT lives_ok(format($$SELECT set_config('request.jwt.claim.clinic_id', %L, false)$$, :'cb'), 'request.jwt.claim.clinic_id can be set');
SELECT is(pg_temp.err('SELECT count(*) FROM clinic.patients'), '42501', 'forged request.jwt.claims select no clinic');
SELECT is(pg_temp.err('SELECT medpro_current_clinic()'), '42501', '... and no context');
SELECT lives_ok($$SELECT set_config('request.headers', '{"x": 1}', false)$$, 'request.headers without authorization');
SELECT lives_ok('SELECT medpro_pre_request()', 'pre_request without a bearer token');
SELECT is(pg_temp.err('SELECT count(*) FROM clinic.patients'), '42501', 'pre_request ignores request.jwt.claims');
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
SELECT is((SELECT count(*) FROM clinic.patients WHERE last_name = 'Secretpatient'), 0::bigint,
	'authenticated for A with request.jwt.claims naming B: B''s rows stay invisible');
COMMIT;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS cleared;

-- 2. A placeholder medpro.* setting made before the library loads. -------------
RESET ROLE;
SELECT lives_ok(format($$SELECT dblink_connect('tap_ph', %L)$$,
	format('host=%s port=%s dbname=%s user=tap_app options=''-c medpro.clinic_id=%s -c medpro.role=admin''',
		   split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
		   current_database(), :'cb')), 'a new session with medpro.* placeholders in its startup options');
SELECT is((SELECT v FROM dblink('tap_ph', $$SELECT current_setting('medpro.clinic_id', true)$$) AS t(v text)), :'cb',
	'before the library loads, the placeholder exists');
SELECT lives_ok($$SELECT dblink_exec('tap_ph', 'DO $x$ BEGIN PERFORM medpro_reset(); END $x$')$$, 'the session loads the library');
SELECT is((SELECT v FROM dblink('tap_ph', $$SELECT coalesce(current_setting('medpro.clinic_id', true), 'gone')$$) AS t(v text)),
	'gone', 'loading the library removes it');
SELECT throws_ok($$SELECT * FROM dblink('tap_ph', 'SELECT count(*) FROM clinic.patients') AS t(n bigint)$$, '42501', NULL,
	'... and it selected no clinic');
SELECT dblink_disconnect('tap_ph');
SET ROLE tap_app;

-- 3. Bad tokens. ----------------------------------------------------------------
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)',
	medpro_jwt_sign(json_build_object('iss', 'medpro', 'sub', :'doc_a', 'clinic_id', :'ca', 'role', 'doctor', 'ver', 1,
									  'iat', extract(epoch FROM now())::int - 7200, 'exp', extract(epoch FROM now())::int - 3600)::jsonb,
					decode(:'key_hex', 'hex'), 'HS256', :'kid'))), '28000', 'an expired token (valid signature) is refused');
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)',
	split_part(:'a_doc', '.', 1) || '.' ||
	rtrim(translate(encode(convert_to(jsonb_set(convert_from(decode(
		rpad(translate(split_part(:'a_doc', '.', 2), '-_', '+/'), (length(split_part(:'a_doc', '.', 2)) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb,
		'{clinic_id}', to_jsonb(:'cb'::text))::text, 'UTF8'), 'base64'), E'+/\n', '-_'), '=') || '.' ||
	split_part(:'a_doc', '.', 3))), '28000', 'a token whose clinic_id was changed to B is refused');
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)',
	medpro_jwt_sign(json_build_object('iss', 'medpro', 'sub', :'doc_a', 'clinic_id', :'cb', 'role', 'doctor', 'ver', 1,
									  'exp', extract(epoch FROM now())::int + 600)::jsonb,
					decode(:'key_hex', 'hex'), 'HS256', :'kid'))), '28000',
	'a correctly signed token pairing A''s user with clinic B is refused (clinic mismatch)');
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)',
	medpro_jwt_sign(json_build_object('iss', 'medpro', 'sub', :'doc_b', 'clinic_id', :'cb', 'role', 'doctor', 'ver', 1,
									  'exp', extract(epoch FROM now())::int + 600)::jsonb,
					gen_random_uuid()::text || gen_random_uuid()::text, 'HS256', :'kid'))), '28000',
	'a token signed with another key under the real kid is refused');
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)',
	medpro_jwt_sign(json_build_object('iss', 'medpro', 'sub', :'doc_b', 'clinic_id', :'cb', 'ver', 1,
									  'exp', extract(epoch FROM now())::int + 600)::jsonb,
					decode(:'key_hex' || :'key_hex', 'hex'), 'HS384', :'kid'))), '28000', 'a token with another algorithm under the kid is refused');
BEGIN;
SELECT is(medpro_authenticate(
	medpro_jwt_sign(json_build_object('iss', 'medpro', 'sub', :'sec_a', 'clinic_id', :'ca', 'role', 'admin', 'ver', 1,
									  'exp', extract(epoch FROM now())::int + 600)::jsonb,
					decode(:'key_hex', 'hex'), 'HS256', :'kid')) IS NOT NULL, true, 'a secretary''s token claiming role admin verifies...');
SELECT is(medpro_current_role(), 'secretary', '... but the role comes from medpro.users, not the claim');
COMMIT;
-- Revoked.
BEGIN;
SELECT medpro_authenticate(:'a_admin') IS NOT NULL AS a;
SELECT medpro_revoke_tokens(:'sec_a');
COMMIT;
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)', :'a_sec')), '28000', 'a revoked token is refused');
-- A deleted user.
RESET ROLE;
UPDATE medpro.users SET deleted_at = now() WHERE id = :'gone_a';
SET ROLE tap_app;
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)', :'a_gone')), '28000', 'a deleted user''s token is refused');
-- A suspended clinic.
RESET ROLE;
UPDATE medpro.clinics SET status = 'suspended' WHERE id = :'ca';
SET ROLE tap_app;
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)', :'a_doc')), '42501', 'a suspended clinic''s token is refused (42501)');
SELECT is((SELECT message FROM tap_errors ORDER BY ctid DESC LIMIT 1), 'clinic is suspended', '... with "clinic is suspended"');
SELECT is(pg_temp.err($$SELECT medpro_login('doc@atk-a.test', 'alpha doctor secret')$$), '42501', 'and no new token for it');
RESET ROLE;
UPDATE medpro.clinics SET status = 'active' WHERE id = :'ca';
SET ROLE tap_app;
-- A session context ends when the clinic is suspended meanwhile.
SELECT medpro_authenticate(:'a_doc', true) IS NOT NULL AS session_a;
RESET ROLE;
UPDATE medpro.clinics SET status = 'suspended' WHERE id = :'ca';
SET ROLE tap_app;
SELECT is(pg_temp.err('SELECT count(*) FROM clinic.patients'), '42501', 'a session context does not survive a suspension');
RESET ROLE;
UPDATE medpro.clinics SET status = 'active' WHERE id = :'ca';
SET ROLE tap_app;
SELECT medpro_reset();

-- 4. Ids and company_id of another clinic. -----------------------------------------
BEGIN;
SELECT medpro_authenticate(:'a_admin') IS NOT NULL AS a;
SELECT is(pg_temp.affected(format($$UPDATE clinic.patients SET notes = 'pwned' WHERE id = %L$$, :'b_pat')), 0::bigint,
	'UPDATE by B''s id from A touches nothing');
SELECT is(pg_temp.affected(format('DELETE FROM clinic.patients WHERE id = %L', :'b_pat')), 0::bigint,
	'DELETE by B''s id from A touches nothing');
SELECT is((SELECT count(*) FROM clinic.patients WHERE id = :'b_pat'), 0::bigint, 'WHERE id = B''s id finds nothing from A');
SELECT is((SELECT count(*) FROM clinic.patients WHERE company_id = :'cb'), 0::bigint, 'WHERE company_id = B finds nothing from A');
SELECT is(pg_temp.affected(format($$UPDATE clinic.patients SET notes = 'pwned' WHERE id = %L OR true$$, :'b_pat')), 1::bigint,
	'UPDATE ... OR true from A changes only A''s own row');
COMMIT;
SELECT is(pg_temp.err(format($$INSERT INTO clinic.patients (first_name, last_name, company_id) VALUES ('x', 'y', %L)$$, :'cb')),
	'42501', 'INSERT with company_id = B needs a context first');
BEGIN;
SELECT medpro_authenticate(:'a_admin') IS NOT NULL AS a;
SAVEPOINT s;
SELECT is(pg_temp.err(format($$INSERT INTO clinic.patients (first_name, last_name, company_id) VALUES ('Intruder', 'Row', %L)$$, :'cb')),
	'23514', 'INSERT with company_id = B from A is refused');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.err(format('UPDATE clinic.patients SET company_id = %L', :'cb')), '23514',
	'UPDATE SET company_id = B from A is refused');
ROLLBACK TO SAVEPOINT s;
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS b;
SELECT is((SELECT notes FROM clinic.patients WHERE id = :'b_pat'), 'bravo private note', 'B''s row is unchanged');
SELECT is((SELECT count(*) FROM clinic.patients WHERE last_name IN ('Row', 'Patient')), 0::bigint, 'nothing of A reached B');
COMMIT;

-- 5. Plans cached across clinics. ---------------------------------------------------
SET plan_cache_mode = force_generic_plan;
PREPARE tap_names AS SELECT string_agg(last_name, ',' ORDER BY last_name) FROM clinic.patients;
PREPARE tap_by_id(uuid) AS SELECT count(*) FROM clinic.patients WHERE id = $1;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
EXECUTE tap_names;
SELECT is((SELECT count(*) FROM clinic.patients WHERE last_name = 'Patient'), 1::bigint, 'A sees its patient');
COMMIT;
CREATE FUNCTION pg_temp.names() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT string_agg(last_name, ',' ORDER BY last_name) FROM clinic.patients);
END $$;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
SELECT is(pg_temp.names(), 'Patient', 'a PL/pgSQL plan made under A returns A''s rows');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS b;
SELECT is(pg_temp.names(), 'Secretpatient', '... and B''s rows when run under B');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS b;
CREATE TEMP TABLE tap_generic AS EXECUTE tap_names;
SELECT is((SELECT string_agg FROM tap_generic), 'Secretpatient', 'a generic prepared plan made under A returns B''s rows under B');
CREATE TEMP TABLE tap_generic_id AS EXECUTE tap_by_id(:'a_pat');
SELECT is((SELECT count FROM tap_generic_id), 0::bigint, 'a parameterised generic plan does not find A''s id under B');
COMMIT;
RESET plan_cache_mode;
DEALLOCATE ALL;

-- 6. Context left behind a transaction pooler; DISCARD ALL; RESET ALL. ---------
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
COMMIT;
SELECT is(pg_temp.err('SELECT count(*) FROM clinic.patients'), '42501',
	'the next client on the same backend (no token) sees nothing');
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
ROLLBACK;
SELECT is(pg_temp.err('SELECT count(*) FROM clinic.patients'), '42501', '... nor after a ROLLBACK');
-- DISCARD ALL would drop pgTAP's temporary tables: a session of its own.
RESET ROLE;
SELECT dblink_connect('tap_pool', format('host=%s port=%s dbname=%s user=tap_app',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database())) AS pool;
SELECT is((SELECT n FROM dblink('tap_pool', format($q$SELECT (medpro_authenticate(%L, true) IS NOT NULL)::int$q$, :'a_doc')) AS t(n int)), 1,
	'a session authenticates');
SELECT is((SELECT n FROM dblink('tap_pool', $q$SELECT count(*) FROM clinic.patients WHERE last_name = 'Patient'$q$) AS t(n bigint)), 1::bigint,
	'a session context works');
SELECT dblink_exec('tap_pool', 'DISCARD ALL') AS discarded;
SELECT throws_ok($$SELECT * FROM dblink('tap_pool', 'SELECT count(*) FROM clinic.patients') AS t(n bigint)$$, '42501', NULL,
	'DISCARD ALL ends a session context');
SELECT is((SELECT n FROM dblink('tap_pool', format($q$SELECT (medpro_authenticate(%L, true) IS NOT NULL)::int$q$, :'a_doc')) AS t(n int)), 1,
	'authenticated for the session again');
SELECT dblink_exec('tap_pool', 'RESET ALL') AS reset;
SELECT throws_ok($$SELECT * FROM dblink('tap_pool', 'SELECT count(*) FROM clinic.patients') AS t(n bigint)$$, '42501', NULL,
	'RESET ALL ends a session context');
SELECT dblink_disconnect('tap_pool');
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'a_doc') IS NOT NULL AS a;
SELECT count(*) AS a_rows FROM clinic.patients;
SELECT is(pg_temp.err(format('SELECT medpro_authenticate(%L)', :'b_doc')), '42501',
	'a transaction that read A cannot switch to B');
COMMIT;

-- 7. Error messages. ------------------------------------------------------------
BEGIN;
SELECT medpro_authenticate(:'a_admin') IS NOT NULL AS a;
SAVEPOINT s;
SELECT is(pg_temp.err($$INSERT INTO clinic.patients (first_name, last_name, patient_number) VALUES ('Dup', 'Number', 'P-B-0001')$$),
	'no error', 'B''s patient number is free in A: no error reveals that B uses it');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.err($$SELECT medpro_create_user('doc@atk-b.test', 'some long password', 'doctor')$$), '23505',
	'an email used in B is refused in A...');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.err(format('SELECT medpro_revoke_tokens(%L)', :'doc_b')), '42501', 'A''s admin cannot revoke B''s users');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.err(format($$SELECT medpro_create_user('x@atk-a.test', 'some long password', 'doctor', NULL, NULL, %L)$$, :'cb')),
	'42501', 'A''s admin cannot create users in B');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT is((SELECT array_agg(attempt) FROM tap_errors
			WHERE concat_ws(' ', message, detail, hint) ~* ('(' || :'cb' || '|' || :'doc_b' || '|' || :'db_b'
								|| '|Bravo|Secretpatient|P-B-0001|atk-b|bravo private)')), NULL,
	'no error message, detail or hint carries clinic B''s id, name, users, database or data');
SELECT cmp_ok((SELECT count(*) FROM tap_errors), '>=', 15::bigint, 'the error check saw the attempts');

-- 8. SQL injection through every text argument of every medpro function. -------
RESET ROLE;
CREATE TABLE public.tap_injected (payload text);
GRANT INSERT ON public.tap_injected TO PUBLIC;
CREATE TEMP TABLE tap_inj_calls (fn text, arg int, runner text, outcome text);
GRANT ALL ON tap_inj_calls TO PUBLIC;
CREATE FUNCTION pg_temp.inject_all(runner text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
	f record;
	i int;
	j int;
	p text;
	args text[];
	st text;
	payloads text[] := ARRAY[
		$p$x'); INSERT INTO public.tap_injected VALUES ('q1'); --$p$,
		$p$x' OR '1'='1$p$,
		$p$x"; INSERT INTO public.tap_injected VALUES ('q2'); --$p$,
		$p$x$$; INSERT INTO public.tap_injected VALUES ('q3'); --$p$,
		$p$x\'); INSERT INTO public.tap_injected VALUES ('q4'); --$p$,
		$p$x%I%L%s'||(SELECT 'q5')||'$p$];
BEGIN
	FOR f IN
		SELECT p.oid, p.oid::regproc::text AS name, p.proargnames AS names,
			   (SELECT array_agg(t ORDER BY o) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, o)) AS types
		  FROM pg_proc p
		  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
		  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'medpro'
		 WHERE 'text'::regtype = ANY (p.proargtypes::oid[])
		   AND p.prorettype <> 'trigger'::regtype
		   -- SQL text by contract (superuser only): medpro.autonomous runs its argument
		   AND p.oid::regproc::text NOT IN ('medpro.autonomous')
		   AND has_function_privilege(p.oid, 'EXECUTE')
		 ORDER BY 2
	LOOP
		FOR i IN 1 .. array_length(f.types, 1) LOOP
			CONTINUE WHEN f.types[i] <> 'text'::regtype;
			FOREACH p IN ARRAY payloads LOOP
				args := '{}';
				FOR j IN 1 .. array_length(f.types, 1) LOOP
					args := args || CASE
						WHEN j = i THEN quote_literal(p) || '::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] IN ('country') THEN '''FR''::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] IN ('name') THEN '''Injection clinic''::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] ~ 'email' THEN quote_literal('inj' || (random() * 1e9)::bigint || '@inj.test') || '::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] ~ 'password' THEN '''an injection password 1''::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] = 'role' THEN '''doctor''::text'
						WHEN f.types[j] = 'text'::regtype AND f.names[j] IN ('algorithm') THEN '''HS256''::text'
						ELSE format('NULL::%s', f.types[j]::regtype)
					END;
				END LOOP;
				BEGIN
					EXECUTE format('SELECT %s(%s)', f.name, array_to_string(args, ', '));
					st := 'ok';
				EXCEPTION WHEN OTHERS THEN
					GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
				END;
				INSERT INTO pg_temp.tap_inj_calls VALUES (f.name, i, runner, st);
			END LOOP;
		END LOOP;
	END LOOP;
END $fn$;
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'a_admin') IS NOT NULL AS a;
SELECT pg_temp.inject_all('medpro_api');
COMMIT;
RESET ROLE;
SELECT pg_temp.inject_all('superuser');
SELECT is((SELECT array_agg(DISTINCT payload) FROM public.tap_injected), NULL,
	'no payload in any text argument of any medpro function ran as SQL');
SELECT cmp_ok((SELECT count(DISTINCT fn) FROM tap_inj_calls WHERE runner = 'superuser'), '>=', 15::bigint,
	'the injection loop reached the medpro functions with text arguments');
SELECT cmp_ok((SELECT count(DISTINCT fn) FROM tap_inj_calls WHERE runner = 'medpro_api'), '>=', 5::bigint,
	'... and those medpro_api may call');
SELECT is((SELECT array_agg(DISTINCT fn || ':' || outcome) FROM tap_inj_calls WHERE outcome IN ('42601', '42703', '42883', '42P01', 'XX000')), NULL,
	'no payload reached a SQL parser (no syntax, undefined-object or internal error)');
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'b_doc') IS NOT NULL AS b;
SELECT is((SELECT count(*) FROM clinic.patients WHERE last_name = 'Secretpatient'), 1::bigint, 'clinic B is intact after the injections');
COMMIT;
RESET ROLE;
DROP TABLE public.tap_injected;

-- 9. Login timing: unknown and known emails. ---------------------------------------
CREATE TEMP TABLE tap_timing (kind text, ms float8);
GRANT ALL ON tap_timing TO tap_app;
SET ROLE tap_app;
DO $$
DECLARE
	t0 timestamptz;
	i int;
BEGIN
	FOR i IN 1..12 LOOP
		t0 := clock_timestamp();
		BEGIN
			PERFORM medpro_login(format('atk-unknown-%s@atk-a.test', i), 'a guessed password');
		EXCEPTION WHEN invalid_password THEN NULL;
		END;
		INSERT INTO tap_timing VALUES ('unknown', extract(epoch FROM clock_timestamp() - t0) * 1000);
		t0 := clock_timestamp();
		BEGIN
			PERFORM medpro_login('admin@atk-b.test', format('a guessed password %s', i));
		EXCEPTION WHEN invalid_password THEN NULL;
		END;
		INSERT INTO tap_timing VALUES ('known', extract(epoch FROM clock_timestamp() - t0) * 1000);
		IF i % 4 = 0 THEN
			PERFORM medpro_login('admin@atk-b.test', 'bravo chief secret 1');
		END IF;
	END LOOP;
END $$;
RESET ROLE;
SELECT cmp_ok((SELECT avg(ms) FROM tap_timing WHERE kind = 'unknown') / (SELECT avg(ms) FROM tap_timing WHERE kind = 'known'),
	'>', 0.6::float8, 'login for an unknown email is not measurably faster than for a known one (ratio > 0.6)');
SELECT cmp_ok((SELECT avg(ms) FROM tap_timing WHERE kind = 'unknown') / (SELECT avg(ms) FROM tap_timing WHERE kind = 'known'),
	'<', 1.6::float8, '... nor slower (ratio < 1.6)');

SELECT * FROM finish();
