-- pgTAP: accounts.  Lockout after medpro.login_max_failures failures for
-- medpro.login_lockout seconds (audited); the password policy; changing
-- one's password revokes older tokens; deactivating a user revokes its
-- tokens at once, in other sessions too.  Two clinics: nothing here
-- reaches across them.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(34);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_app') THEN
		CREATE ROLE tap_app LOGIN;
		GRANT medpro_api TO tap_app;
	END IF;
END $$;
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a7a7a7a7-0000-4000-8000-000000000001', 'Cabinet Lumière', 'FR', 'acc-a@clinic.test', 'active'),
	('b8b8b8b8-0000-4000-8000-000000000002', 'Clínica Sol', 'ES', 'acc-b@clinic.test', 'active')
ON CONFLICT DO NOTHING;
\set ca 'a7a7a7a7-0000-4000-8000-000000000001'
\set cb 'b8b8b8b8-0000-4000-8000-000000000002'
SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_create_user('boss@acc-a.test', 'accounts chief pass', 'admin', NULL, NULL, :'ca') AS admin_a \gset
SELECT medpro_create_user('lock@acc-a.test', 'accounts frozen pass', 'doctor', NULL, NULL, :'ca') AS lock_a \gset
SELECT medpro_create_user('chg@acc-a.test', 'accounts change pass', 'doctor', NULL, NULL, :'ca') AS chg_a \gset
SELECT medpro_create_user('boss@acc-b.test', 'accounts bravo pass', 'admin', NULL, NULL, :'cb') AS admin_b \gset

-- Password policy. ----------------------------------------------------------------
SELECT throws_ok(format($$SELECT medpro_create_user('p1@acc-a.test', 'elevenchars', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'22023', 'password is too short', 'fewer than 12 characters');
SELECT lives_ok(format($$SELECT medpro_create_user('p2@acc-a.test', 'twelve chars', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'12 characters are enough');
SELECT throws_ok(format($$SELECT medpro_create_user('p3@acc-a.test', 'my p3@acc-a.test pass', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'22023', 'password must not contain the account''s email address', 'the whole email address, even with a short local part');
SELECT throws_ok(format($$SELECT medpro_create_user('pierre@acc-a.test', 'Pierre 2026 secure', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'22023', 'password must not contain the account''s email address', 'the email''s local part, in any case');
SELECT throws_ok(format($$SELECT medpro_create_user('p4@acc-a.test', 'cabinet lumière 2026', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'22023', 'password must not contain the clinic''s name', 'the clinic''s name, in any case');
SELECT throws_ok(format($$SELECT medpro_create_user('p5@acc-a.test', 'CABINET-LUMIÈRE!!', 'doctor', NULL, NULL, %L)$$, :'ca'),
	'22023', 'password must not contain the clinic''s name', 'the clinic''s name with other punctuation');
SELECT lives_ok(format($$SELECT medpro_create_user('p6@acc-b.test', 'cabinet lumière 2026', 'doctor', NULL, NULL, %L)$$, :'cb'),
	'another clinic''s name is no concern of clinic B');
SELECT throws_ok($$SELECT medpro_register_clinic('Maison Santé Nord', 'FR', 'reg@acc-c.test', 'maison santé nord 1')$$,
	'22023', 'password must not contain the clinic''s name', 'registering a clinic applies the policy to its admin');
SELECT is((SELECT count(*) FROM medpro.clinics WHERE name = 'Maison Santé Nord'), 0::bigint, '... and leaves nothing behind');

-- Lockout. ------------------------------------------------------------------------
SET medpro.login_max_failures = 3;
SET medpro.login_lockout = 2;
SELECT throws_ok($$SELECT medpro_login('lock@acc-a.test', 'wrong password 1')$$, '28P01', 'invalid email or password', 'failure 1');
SELECT throws_ok($$SELECT medpro_login('lock@acc-a.test', 'wrong password 2')$$, '28P01', 'invalid email or password', 'failure 2');
SELECT throws_ok($$SELECT medpro_login('lock@acc-a.test', 'wrong password 3')$$, '28P01', 'invalid email or password', 'failure 3 locks');
SELECT isnt((SELECT locked_until FROM medpro.users WHERE id = :'lock_a'), NULL, 'the account is locked');
SELECT throws_ok($$SELECT medpro_login('lock@acc-a.test', 'accounts frozen pass')$$, '28P01', 'invalid email or password',
	'the right password is refused while locked, with the same error');
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE action = 'account_locked' AND entity_id = :'lock_a'), 1::bigint,
	'the lock is audited once');
SELECT is((SELECT new_data ->> 'reason' FROM medpro.audit_log WHERE action = 'login_failed' AND entity_id = :'lock_a'
			ORDER BY id DESC LIMIT 1), 'account locked', 'the refused login during the lock is audited');
SELECT pg_sleep(2.2);
SELECT matches(medpro_login('lock@acc-a.test', 'accounts frozen pass'), '^eyJ', 'after the lockout the right password works');
SELECT is((SELECT failed_logins FROM medpro.users WHERE id = :'lock_a'), 0, 'and the counter is reset');
RESET medpro.login_max_failures;
RESET medpro.login_lockout;

-- Changing one's password. ----------------------------------------------------------
SET ROLE tap_app;
SELECT medpro_login('chg@acc-a.test', 'accounts change pass') AS chg_tok \gset
SELECT throws_ok($$SELECT medpro_change_password('accounts change pass', 'a brand new secret')$$, '42501', 'no clinic selected',
	'changing a password needs a verified token');
BEGIN;
SELECT medpro_authenticate(:'chg_tok') IS NOT NULL AS a;
SAVEPOINT s;
SELECT throws_ok($$SELECT medpro_change_password('not my password', 'a brand new secret')$$, '28P01', 'invalid email or password',
	'a wrong old password is refused like a login');
ROLLBACK TO SAVEPOINT s;
SELECT throws_ok($$SELECT medpro_change_password('accounts change pass', 'short')$$, '22023', 'password is too short',
	'the new password follows the policy');
ROLLBACK TO SAVEPOINT s;
SELECT throws_ok($$SELECT medpro_change_password('accounts change pass', 'my CABINET LUMIÈRE pass')$$, '22023',
	'password must not contain the clinic''s name', '... including the clinic''s name');
ROLLBACK TO SAVEPOINT s;
SELECT lives_ok($$SELECT medpro_change_password('accounts change pass', 'a brand new secret')$$, 'the password changes');
COMMIT;
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', :'chg_tok'), '28000', 'invalid token: revoked',
	'the token issued before the change is revoked');
SELECT throws_ok($$SELECT medpro_login('chg@acc-a.test', 'accounts change pass')$$, '28P01', NULL, 'the old password no longer works');
SELECT matches(medpro_login('chg@acc-a.test', 'a brand new secret'), '^eyJ', 'the new one does');
RESET ROLE;
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE action = 'password_change' AND entity_id = :'chg_a'), 1::bigint,
	'the change is audited');
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE entity_id = :'chg_a'
			AND coalesce(new_data::text, '') || coalesce(old_data::text, '') ~* '(brand new|change pass|argon2)'), 0::bigint,
	'no audit row carries either password or a hash');

-- Deactivation revokes at once. ------------------------------------------------------
SET ROLE tap_app;
SELECT medpro_login('chg@acc-a.test', 'a brand new secret') AS chg_tok2 \gset
SELECT medpro_login('boss@acc-a.test', 'accounts chief pass') AS boss_a \gset
SELECT medpro_login('boss@acc-b.test', 'accounts bravo pass') AS boss_b \gset
RESET ROLE;
-- a session context in another backend
SELECT dblink_connect('tap_other', format('host=%s port=%s dbname=%s user=tap_app',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database())) AS other;
SELECT is((SELECT n FROM dblink('tap_other', format('SELECT (medpro_authenticate(%L, true) IS NOT NULL)::int', :'chg_tok2')) AS t(n int)), 1,
	'the user holds a session context in another backend');
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'boss_b') IS NOT NULL AS b;
SELECT throws_ok(format('SELECT medpro_set_user_active(%L, false)', :'chg_a'), '42501', 'permission denied to change this user',
	'clinic B''s admin cannot deactivate clinic A''s user');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'boss_a') IS NOT NULL AS a;
SELECT throws_ok(format('SELECT medpro_set_user_active(%L, false)', gen_random_uuid()), '42501', 'permission denied to change this user',
	'an unknown user gets the same answer as another clinic''s');
SELECT lives_ok(format('SELECT medpro_set_user_active(%L, false)', :'chg_a'), 'clinic A''s admin deactivates the user');
COMMIT;
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', :'chg_tok2'), '28000', NULL, 'the deactivated user''s token is refused at once');
RESET ROLE;
SELECT throws_ok($$SELECT * FROM dblink('tap_other', 'SELECT medpro_current_user_id()') AS t(u uuid)$$, '42501', NULL,
	'the other backend''s session context ends at its next transaction');
SELECT dblink_disconnect('tap_other');

SELECT * FROM finish();
