-- pgTAP: the tenant context and everything that must not select a clinic.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(20);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_app') THEN
		CREATE ROLE tap_app LOGIN;
		GRANT medpro_api TO tap_app;
	END IF;
END $$;
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a3a3a3a3-0000-4000-8000-000000000001', 'Ctx Clinic A', 'FR', 'ctx-a@clinic.test', 'active'),
	('b4b4b4b4-0000-4000-8000-000000000002', 'Ctx Clinic B', 'ES', 'ctx-b@clinic.test', 'active')
ON CONFLICT DO NOTHING;
SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_create_user('ctx-a@a.test', 'ctx doctor a password', 'doctor', NULL, NULL,
						  'a3a3a3a3-0000-4000-8000-000000000001') AS user_a \gset
SELECT medpro_create_user('ctx-b@b.test', 'ctx front b password', 'secretary', NULL, NULL,
						  'b4b4b4b4-0000-4000-8000-000000000002') AS user_b \gset

SET ROLE tap_app;
SELECT medpro_login('ctx-a@a.test', 'ctx doctor a password') AS tok_a \gset
SELECT medpro_login('ctx-b@b.test', 'ctx front b password') AS tok_b \gset

SELECT throws_ok('SELECT medpro_current_clinic()', '42501', 'no clinic selected', 'no context at start');
SELECT throws_ok('SELECT medpro_current_user_id()', '42501', 'no clinic selected', 'no user at start');
SELECT throws_ok('SELECT medpro_current_role()', '42501', 'no clinic selected', 'no role at start');

-- Forgery attempts through settings.
SELECT lives_ok($$SELECT set_config('request.jwt.claims', '{"clinic_id":"a3a3a3a3-0000-4000-8000-000000000001","role":"admin"}', false)$$, 'request.jwt.claims can be set');
SELECT throws_ok('SELECT medpro_current_clinic()', '42501', 'no clinic selected', 'request.jwt.claims selects nothing');
SELECT throws_ok($$SET medpro.clinic_id = 'a3a3a3a3-0000-4000-8000-000000000001'$$, '42602', NULL, 'the medpro prefix is reserved for SET');
SELECT throws_ok($$SELECT set_config('medpro.tenant', 'a3a3a3a3-0000-4000-8000-000000000001', false)$$, '42602', NULL, 'the medpro prefix is reserved for set_config');
SELECT lives_ok('SELECT medpro_pre_request()', 'pre_request without headers is anonymous');
SELECT throws_ok('SELECT medpro_current_clinic()', '42501', 'no clinic selected', 'still no clinic after pre_request without a bearer');

-- A verified token selects its own clinic, for one transaction.
BEGIN;
SELECT is(medpro_authenticate(:'tok_a') ->> 'clinic_id', 'a3a3a3a3-0000-4000-8000-000000000001', 'authenticate returns the claims');
SELECT is(medpro_current_clinic(), 'a3a3a3a3-0000-4000-8000-000000000001'::uuid, 'clinic A selected');
SELECT is(medpro_current_user_id(), :'user_a'::uuid, 'user A selected');
SELECT is(medpro_current_role(), 'doctor', 'role from the user record');
COMMIT;
SELECT throws_ok('SELECT medpro_current_clinic()', '42501', 'no clinic selected', 'context ends with the transaction (pooler safe)');

-- The next "client" on the same backend, behind a transaction pooler.
BEGIN;
SELECT is(medpro_authenticate(:'tok_b') ->> 'role', 'secretary', 'client B authenticates');
SELECT is(medpro_current_clinic(), 'b4b4b4b4-0000-4000-8000-000000000002'::uuid, 'clinic B selected, not A');
COMMIT;

-- Tampered and wrong-key tokens.
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', left(:'tok_a', -2) ||
	CASE WHEN right(:'tok_a', 2) = 'AA' THEN 'AB' ELSE 'AA' END),
	'28000', NULL, 'a tampered signature is refused');
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', split_part(:'tok_a', '.', 1) || '.' || split_part(:'tok_b', '.', 2) || '.' || split_part(:'tok_a', '.', 3)),
	'28000', 'invalid token: signature mismatch', 'a payload swapped between tokens is refused');
SELECT throws_ok($$SELECT medpro_authenticate('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.')$$, '28000', NULL, 'alg none is refused');
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', repeat('x', 100000)), '28000', 'invalid token: token too large', 'huge token');
RESET ROLE;

SELECT * FROM finish();
