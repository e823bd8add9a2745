-- pgTAP: keys, users, login and their error paths (SQLSTATEs of DESIGN 5.8),
-- the privileges of medpro_api, and login timing.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(42);

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

INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a1a1a1a1-0000-4000-8000-000000000001', 'Tap Clinic A', 'FR', 'tap-a@clinic.test', 'active'),
	('b2b2b2b2-0000-4000-8000-000000000002', 'Tap Clinic B', 'ES', 'tap-b@clinic.test', 'active');

-- Operators only.
SET ROLE tap_app;
SELECT throws_ok($$SELECT medpro_key_rotate()$$, '42501', NULL, 'medpro_api cannot rotate keys');
SELECT throws_ok($$SELECT medpro_key_import('x', 'HS256', repeat('k', 40))$$, '42501', NULL, 'medpro_api cannot import keys');
SELECT throws_ok($$SELECT medpro_key_retire('x')$$, '42501', NULL, 'medpro_api cannot retire keys');
SELECT throws_ok($$SELECT medpro_create_super_admin('x@y.test', 'a long password')$$, '42501', NULL, 'medpro_api cannot create super admins');
SELECT throws_ok($$SELECT medpro_create_user('x@y.test', 'a long password', 'doctor', NULL, NULL, 'a1a1a1a1-0000-4000-8000-000000000001')$$,
	'42501', 'no clinic selected', 'creating a user needs a context or the operator role');
SELECT throws_ok($$SELECT * FROM medpro.users$$, '42501', NULL, 'medpro_api cannot read users');
SELECT throws_ok($$SELECT * FROM medpro.keys$$, '42501', NULL, 'medpro_api cannot read keys');
SELECT throws_ok($$SELECT * FROM medpro.clinics$$, '42501', NULL, 'medpro_api cannot read clinics');
SELECT throws_ok($$SELECT * FROM medpro.audit_log$$, '42501', NULL, 'medpro_api cannot read the audit log');
SELECT throws_ok($$SELECT medpro.seal('\x00', 'x')$$, '42501', NULL, 'medpro_api cannot seal');
SELECT throws_ok($$SELECT medpro.password_hash('a long password', NULL)$$, '42501', NULL, 'medpro_api cannot call internal helpers');
SELECT throws_ok($$SELECT medpro.login_failed(NULL, 'x', 'x', NULL, 1, 1)$$, '42501', NULL, 'medpro_api cannot forge failure records');
SELECT throws_ok($$SELECT dblink_connect('dbname=postgres')$$, '42501', NULL, 'medpro_api cannot use dblink');
SELECT throws_ok($$INSERT INTO medpro.audit_log (action) VALUES ('forged')$$, '42501', NULL, 'medpro_api cannot write the audit log');
RESET ROLE;

-- Keys.
SET ROLE tap_op;
SELECT matches(medpro_key_rotate('HS256'), '^mp[0-9a-f]{18}$', 'rotate returns a kid');
SELECT throws_ok($$SELECT medpro_key_rotate('none')$$, '22023', NULL, 'alg none is refused');
SELECT throws_ok($$SELECT medpro_key_rotate('')$$, '22023', NULL, 'empty algorithm is refused');
RESET ROLE;
SELECT throws_ok($$SELECT medpro_key_import('tap-legacy', 'HS256', 'secret')$$, '22023', NULL, 'a 6-byte HMAC key is refused');
SET ROLE tap_op;
SELECT throws_ok($$SELECT medpro_key_retire('tap-unknown')$$, '22023', NULL, 'retiring an unknown key');
SELECT throws_ok($$SELECT medpro_key_import('tap-op-key', 'HS256', repeat('k', 40))$$, '42501', NULL, 'operators cannot import keys (only superusers)');
SELECT throws_ok($$SELECT old_data FROM medpro.audit_log$$, '42501', NULL, 'operators cannot read audit data');
SELECT lives_ok($$SELECT action, entity, at FROM medpro.audit_trail$$, 'operators read the audit trail without its data');
RESET ROLE;

-- Users and bad input.
SET ROLE tap_op;
SELECT isnt(medpro_create_user('tap-admin@a.test', 'tap admin password', 'admin', NULL, NULL,
	'a1a1a1a1-0000-4000-8000-000000000001'), NULL, 'operator creates a clinic admin');
SELECT throws_ok($$SELECT medpro_create_user('tap-admin@a.test', 'tap admin password', 'admin', NULL, NULL, 'a1a1a1a1-0000-4000-8000-000000000001')$$,
	'23505', 'a user with this email already exists', 'duplicate email (23505, no detail)');
SELECT throws_ok($$SELECT medpro_create_user('TAP-ADMIN@A.TEST', 'tap admin password', 'admin', NULL, NULL, 'a1a1a1a1-0000-4000-8000-000000000001')$$,
	'23505', NULL, 'duplicate email in another case');
SELECT throws_ok($$SELECT medpro_create_user(E'bad\x01@a.test', 'tap admin password', 'doctor', NULL, NULL, 'a1a1a1a1-0000-4000-8000-000000000001')$$,
	'22023', 'invalid email address', 'control characters in the email');
SELECT throws_ok($$SELECT medpro_create_user('x@a.test', 'short', 'doctor', NULL, NULL, 'a1a1a1a1-0000-4000-8000-000000000001')$$,
	'22023', 'password is too short', 'short password');
SELECT throws_ok($$SELECT medpro_create_user('x@a.test', 'a long password', 'doctor', NULL, NULL, NULL)$$,
	'22023', 'clinic_id is required', 'clinic is required for clinic users');
SELECT throws_ok($$SELECT medpro_create_user('x@a.test', 'a long password', NULL)$$,
	'22023', NULL, 'NULL role');
RESET ROLE;

-- Login.
SET ROLE tap_app;
SELECT throws_ok($$SELECT medpro_login('tap-nobody@a.test', 'tap admin password')$$, '28P01', 'invalid email or password', 'unknown email');
SELECT throws_ok($$SELECT medpro_login('tap-admin@a.test', 'wrong password!')$$, '28P01', 'invalid email or password', 'wrong password');
SELECT throws_ok($$SELECT medpro_login('tap-admin@a.test', E'\u00e9\u00e8')$$, '28P01', 'invalid email or password', 'non-ASCII wrong password');
SELECT throws_ok($$SELECT medpro_login(NULL, NULL)$$, '22023', NULL, 'NULL arguments');
SELECT matches(medpro_login('tap-admin@a.test', 'tap admin password'), '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$', 'login returns a compact JWS');
SELECT is(medpro_authenticate(medpro_login('tap-admin@a.test', 'tap admin password')) ->> 'clinic_id',
	'a1a1a1a1-0000-4000-8000-000000000001', 'the token authenticates for its clinic');
RESET ROLE;

-- Timing: an unknown email costs about the same as a wrong password.
CREATE TEMP TABLE tap_timing (kind text, ms float8);
GRANT ALL ON tap_timing TO tap_app;
SET ROLE tap_app;
DO $$
DECLARE
	t0 timestamptz;
	i int;
BEGIN
	FOR i IN 1..6 LOOP
		t0 := clock_timestamp();
		BEGIN
			PERFORM medpro_login(format('tap-unknown-%s@a.test', i), 'tap admin password');
		EXCEPTION WHEN invalid_password THEN NULL;
		END;
		INSERT INTO tap_timing VALUES ('unknown', extract(epoch FROM clock_timestamp() - t0) * 1000);
		t0 := clock_timestamp();
		BEGIN
			PERFORM medpro_login('tap-admin@a.test', format('wrong password %s', i));
		EXCEPTION WHEN invalid_password THEN NULL;
		END;
		INSERT INTO tap_timing VALUES ('wrong', extract(epoch FROM clock_timestamp() - t0) * 1000);
		-- keep the account below the lockout threshold
		IF i % 3 = 0 THEN
			PERFORM medpro_login('tap-admin@a.test', 'tap admin password');
		END IF;
	END LOOP;
END $$;
RESET ROLE;
SELECT cmp_ok((SELECT avg(ms) FROM tap_timing WHERE kind = 'unknown') /
			  (SELECT avg(ms) FROM tap_timing WHERE kind = 'wrong'), '>', 0.5::float8,
			  'unknown email is not much faster than a wrong password');
SELECT cmp_ok((SELECT avg(ms) FROM tap_timing WHERE kind = 'unknown') /
			  (SELECT avg(ms) FROM tap_timing WHERE kind = 'wrong'), '<', 2.0::float8,
			  'unknown email is not much slower than a wrong password');

-- Failed logins were recorded although each call raised.
SELECT cmp_ok((SELECT count(*) FROM medpro.audit_log WHERE action = 'login_failed'
				AND new_data ->> 'email' LIKE 'tap-%'), '>=', 12::bigint, 'failed logins are audited');
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE new_data::text ~* '(tap admin password|wrong password [0-9]|eyJ|\$argon2)'), 0::bigint,
	'no audit row carries a password, a hash or a token');

-- The audit log is append-only, even for its owner.
SELECT throws_ok($$UPDATE medpro.audit_log SET action = 'x'$$, '42501', 'medpro.audit_log is append-only', 'audit rows cannot be updated');
SELECT throws_ok($$DELETE FROM medpro.audit_log$$, '42501', 'medpro.audit_log is append-only', 'audit rows cannot be deleted');
SELECT throws_ok($$TRUNCATE medpro.audit_log$$, '42501', 'medpro.audit_log is append-only', 'the audit log cannot be truncated');

SELECT * FROM finish();
