--
-- tenant: the tenant context, its lifetime, and everything that must not
-- be able to set it.  Uses the clinics and users made by auth.sql.
--
SET ROLE regress_app;
SELECT medpro_login('admin@a.test', 'alpha clinic pw 1') AS tok_a \gset
SELECT medpro_login('admin@b.test', 'bravo clinic pw 2') AS tok_b \gset
SELECT medpro_login('root@medpro.test', 'correct horse battery') AS tok_root \gset

-- Without a context every accessor raises 42501.
SELECT regress_try('SELECT medpro_current_clinic()');
SELECT regress_try('SELECT medpro_current_user_id()');
SELECT regress_try('SELECT medpro_current_role()');

-- Nothing a client can write selects a clinic.
SELECT set_config('request.jwt.claims', '{"clinic_id": "aaaaaaaa-0000-4000-8000-000000000001", "role": "admin"}', false) IS NOT NULL AS set;
SET request.jwt.claim.clinic_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT regress_try($$SET medpro.clinic_id = 'aaaaaaaa-0000-4000-8000-000000000001'$$);
SELECT regress_try($$SELECT set_config('medpro.current_clinic', 'aaaaaaaa-0000-4000-8000-000000000001', false)$$);
SELECT regress_try('SELECT medpro_current_clinic()');
RESET request.jwt.claim.clinic_id;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS cleared;

-- A context lasts until the end of the transaction that set it.
BEGIN;
SELECT medpro_authenticate(:'tok_a') ->> 'email' AS email;
SELECT medpro_current_clinic(), medpro_current_role(),
	   medpro_current_user_id()::text = (regress_jwt_part(:'tok_a', 2) ->> 'sub') AS user_matches;
COMMIT;
SELECT regress_try('SELECT medpro_current_clinic()');

-- In autocommit mode it ends with the statement.
SELECT medpro_authenticate(:'tok_a') IS NOT NULL AS authenticated;
SELECT regress_try('SELECT medpro_current_clinic()');

-- Rollback undoes it, also a session context.
BEGIN;
SELECT medpro_authenticate(:'tok_a', session => true) IS NOT NULL AS authenticated;
ROLLBACK;
SELECT regress_try('SELECT medpro_current_clinic()');

-- session => true keeps it past commit; a later transaction-scoped context
-- for another clinic falls back to it at transaction end.
SELECT medpro_authenticate(:'tok_a', session => true) IS NOT NULL AS authenticated;
SELECT medpro_current_clinic();
BEGIN;
SELECT medpro_authenticate(:'tok_b') IS NOT NULL AS authenticated;
SELECT medpro_current_clinic();
COMMIT;
SELECT medpro_current_clinic();

-- Rolling back to a savepoint undoes what was set after it; a released
-- savepoint passes its change on.
SELECT medpro_reset();
BEGIN;
SELECT medpro_authenticate(:'tok_a') IS NOT NULL AS authenticated;
SAVEPOINT s1;
SELECT medpro_authenticate(:'tok_b') IS NOT NULL AS authenticated;
SELECT medpro_current_clinic();
ROLLBACK TO SAVEPOINT s1;
SELECT medpro_current_clinic();
SAVEPOINT s2;
SAVEPOINT s3;
SELECT medpro_authenticate(:'tok_b') IS NOT NULL AS authenticated;
RELEASE SAVEPOINT s3;
SELECT medpro_current_clinic();
ROLLBACK TO SAVEPOINT s2;
SELECT medpro_current_clinic();
COMMIT;
-- An exception block that authenticated and then failed leaves nothing.
BEGIN;
SELECT regress_try(format('SELECT medpro_authenticate(%L), 1/0', :'tok_a'));
SELECT regress_try('SELECT medpro_current_clinic()');
COMMIT;

-- medpro_reset, RESET ALL and DISCARD ALL clear it.
SELECT medpro_reset();
SELECT regress_try('SELECT medpro_current_clinic()');
SELECT medpro_authenticate(:'tok_a', true) IS NOT NULL AS authenticated;
RESET ALL;
SELECT regress_try('SELECT medpro_current_clinic()');
SELECT medpro_authenticate(:'tok_a', true) IS NOT NULL AS authenticated;
DISCARD ALL;
SET ROLE regress_app;
SELECT regress_try('SELECT medpro_current_clinic()');

-- A super admin has a context but no clinic.
BEGIN;
SELECT medpro_authenticate(:'tok_root') ->> 'role' AS role;
SELECT medpro_current_role();
SELECT regress_try('SELECT medpro_current_clinic()');
COMMIT;

-- medpro_pre_request reads the bearer token from request.headers only.
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok_b')::text, true) IS NOT NULL AS set;
SELECT medpro_pre_request();
SELECT medpro_current_clinic();
COMMIT;
BEGIN;
SELECT set_config('request.jwt.claims', json_build_object('clinic_id', 'aaaaaaaa-0000-4000-8000-000000000001')::text, true) IS NOT NULL AS set;
SELECT medpro_pre_request();
SELECT regress_try('SELECT medpro_current_clinic()');
COMMIT;
BEGIN;
SELECT set_config('request.headers', '{"authorization": "Basic dXNlcjpwYXNz"}', true) IS NOT NULL AS set;
SELECT regress_try('SELECT medpro_pre_request()');
SELECT set_config('request.headers', 'not json', true) IS NOT NULL AS set;
SELECT regress_try('SELECT medpro_pre_request()');
SELECT set_config('request.headers', '{"authorization": "Bearer abc.def.ghi"}', true) IS NOT NULL AS set;
SELECT regress_try('SELECT medpro_pre_request()');
COMMIT;

-- Refused tokens: 28000 "invalid token: <reason>".
SELECT regress_try('SELECT medpro_authenticate(NULL)');
SELECT regress_try($$SELECT medpro_authenticate('')$$);
SELECT regress_try($$SELECT medpro_authenticate('garbage')$$);
SELECT regress_try(format('SELECT medpro_authenticate(%L)', repeat('a', 20000)));
-- tampered payload (clinic B's id put in clinic A's token)
SELECT regress_try(format('SELECT medpro_authenticate(%L)',
	split_part(:'tok_a', '.', 1) || '.' ||
	regress_b64url(jsonb_set(regress_jwt_part(:'tok_a', 2), '{clinic_id}',
		'"bbbbbbbb-0000-4000-8000-000000000002"')::text) || '.' ||
	split_part(:'tok_a', '.', 3)));
-- wrong kid
SELECT regress_try(format('SELECT medpro_authenticate(%L)',
	medpro_jwt_sign(regress_jwt_part(:'tok_a', 2), repeat('k', 32), 'HS256', 'mp000000000000000000')));

-- Tokens of the legacy issuer, signed with the imported key (no kid),
-- with the legacy claim names userId/companyId.
RESET ROLE;
SELECT id AS sec_a FROM medpro.users WHERE email = 'sec@a.test' \gset
SELECT id AS admin_a FROM medpro.users WHERE email = 'admin@a.test' \gset
SELECT id AS doc_c FROM medpro.users WHERE email = 'doc@c.test' \gset
SET ROLE regress_app;
\set legacy 'legacy-node-backend-secret-0123456789'
SELECT medpro_authenticate(medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001',
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')) ->> 'companyId' AS legacy_clinic;
-- a legacy token has no ver claim: it counts as version 1, so it fails once
-- the user's tokens were revoked
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'admin_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001',
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001',
	'exp', extract(epoch FROM now())::bigint - 3600), :'legacy')));
-- the clinic claim must be the user's own clinic
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'bbbbbbbb-0000-4000-8000-000000000002',
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'AAAAAAAA-0000-4000-8000-000000000001x',
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', 'not-a-uuid', 'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', '99999999-0000-4000-8000-000000000009', 'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
-- a suspended clinic
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'doc_c', 'companyId', 'cccccccc-0000-4000-8000-000000000003',
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
-- a deactivated user
RESET ROLE;
UPDATE medpro.users SET is_active = false WHERE email = 'admin@b.test';
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'tok_b'));
RESET ROLE;
UPDATE medpro.users SET is_active = true WHERE email = 'admin@b.test';

-- ver must be a plain integer: no rounding, no overflow.
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001', 'ver', 1.5,
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001', 'ver', 1e30,
	'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
-- A foreign issuer's key never vouches for a super admin.
RESET ROLE;
SELECT id AS root_id FROM medpro.users WHERE email = 'root@medpro.test' \gset
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', medpro_jwt_sign(jsonb_build_object(
	'sub', :'root_id', 'exp', extract(epoch FROM now())::bigint + 60), :'legacy')));
-- A session context ends when its token expires.
RESET ROLE;
SET medpro.jwt_leeway = 0;
SET ROLE regress_app;
SELECT medpro_authenticate(medpro_jwt_sign(jsonb_build_object(
	'userId', :'sec_a', 'companyId', 'aaaaaaaa-0000-4000-8000-000000000001',
	'exp', extract(epoch FROM clock_timestamp()) + 1.5), :'legacy'), session => true) IS NOT NULL AS authenticated;
SELECT medpro_current_clinic();
SELECT pg_sleep(2);
SELECT regress_try('SELECT medpro_current_clinic()');
RESET ROLE;
RESET medpro.jwt_leeway;

-- A session context is checked again in every later transaction: revoking
-- the user's tokens, deactivating the user or suspending the clinic ends it.
SET ROLE regress_app;
SELECT medpro_authenticate(:'tok_a', session => true) IS NOT NULL AS authenticated;
SELECT medpro_current_clinic();
RESET ROLE;
UPDATE medpro.users SET is_active = false WHERE email = 'admin@a.test';
SET ROLE regress_app;
SELECT regress_try('SELECT medpro_current_clinic()');
RESET ROLE;
UPDATE medpro.users SET is_active = true WHERE email = 'admin@a.test';
SET ROLE regress_app;
-- deactivation revoked every earlier token: reactivated, the user logs in again
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'tok_a'));
SELECT medpro_login('admin@a.test', 'alpha clinic pw 1') AS tok_a \gset
SELECT medpro_authenticate(:'tok_a', session => true) IS NOT NULL AS authenticated;
RESET ROLE;
UPDATE medpro.clinics SET status = 'suspended' WHERE id = 'aaaaaaaa-0000-4000-8000-000000000001';
SET ROLE regress_app;
SELECT regress_try('SELECT medpro_current_clinic()');
RESET ROLE;
UPDATE medpro.clinics SET status = 'active' WHERE id = 'aaaaaaaa-0000-4000-8000-000000000001';
SET ROLE regress_app;
SELECT medpro_authenticate(:'tok_a', session => true) IS NOT NULL AS authenticated;
RESET ROLE;
UPDATE medpro.users SET token_version = token_version + 1 WHERE email = 'admin@a.test';
SET ROLE regress_app;
SELECT regress_try('SELECT medpro_current_clinic()');
RESET ROLE;

-- Every refusal is audited, without the token.
SELECT new_data ->> 'reason' AS reason, count(*) FROM medpro.audit_log
 WHERE action = 'auth_failed' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS rows_with_token FROM medpro.audit_log WHERE new_data::text ~ 'eyJ';

-- A placeholder medpro.* setting made before the library loads is removed
-- when it loads, and never selects a clinic.
\c - regress_app
SET medpro.clinic_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT regress_try('SELECT medpro_current_clinic()');
SELECT regress_try($$SELECT current_setting('medpro.clinic_id')$$);
