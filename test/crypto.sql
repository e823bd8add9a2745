-- pgTAP: the parts of src/crypto.c that other modules rely on: the SQLSTATEs
-- of sealing without a usable master key and of unsealing a bad value, the
-- sealed format's size, the privileges of the SQL helpers and the Argon2id
-- PHC format.  sql/crypto.sql (pg_regress) covers the key file checks in
-- detail.  Runs as a superuser; everything is rolled back.
\set ON_ERROR_STOP 1
BEGIN;
SET client_min_messages = warning;
SELECT plan(24);

-- Sealing under the configured key.
SELECT is(medpro.master_key_status(), 'ok', 'the configured master key is usable');
SELECT is(medpro.unseal(medpro.seal('\xdeadbeef', 'tap:ctx'), 'tap:ctx'), '\xdeadbeef'::bytea,
	'seal and unseal round trip');
SELECT isnt(medpro.seal('same', 'tap:ctx'), medpro.seal('same', 'tap:ctx'),
	'every seal uses a fresh nonce');
SELECT is(length(medpro.seal('\x0102', 'tap:ctx')), 2 + 29,
	'a sealed value is 29 bytes longer than its plaintext');
SELECT is(get_byte(medpro.seal('x', 'tap:ctx'), 0), 1, 'sealed values start with version 1');
SELECT throws_ok($$SELECT medpro.unseal(medpro.seal('x', 'tap:a'), 'tap:b')$$,
	'XX001', 'could not unseal secret', 'another context does not unseal: XX001');
SELECT throws_ok($$SELECT medpro.unseal('\x01', 'tap:a')$$,
	'XX001', 'could not unseal secret', 'a truncated value does not unseal: XX001');

-- Without a usable master key: 55000, and no path or key in the message.
SET LOCAL medpro.master_key_file = '';
SELECT throws_ok($$SELECT medpro.seal('x', 'tap:a')$$,
	'55000', 'medpro.master_key_file is not set', 'sealing without a key file: 55000');
SELECT throws_ok($$SELECT medpro.unseal('\x01', 'tap:a')$$,
	'55000', 'medpro.master_key_file is not set', 'unsealing without a key file: 55000');
SET LOCAL medpro.master_key_file = '/nonexistent/medpro_tap.key';
SELECT throws_ok($$SELECT medpro.master_key_status()$$,
	'55000', 'could not open medpro master key file: No such file or directory',
	'a missing key file: 55000');
RESET medpro.master_key_file;
SELECT is(medpro.master_key_status(), 'ok', 'RESET brings the configured key back');

-- Privileges: only superusers seal and hash; operators may check the key.
CREATE ROLE tap_crypto_app NOLOGIN IN ROLE medpro_api;
SET LOCAL ROLE tap_crypto_app;
SELECT throws_ok($$SELECT medpro.seal('x', 'tap:a')$$, '42501', NULL, 'medpro_api cannot seal');
SELECT throws_ok($$SELECT medpro.unseal('\x01', 'tap:a')$$, '42501', NULL, 'medpro_api cannot unseal');
SELECT throws_ok($$SELECT medpro.master_key_status()$$, '42501', NULL,
	'medpro_api cannot check the master key');
SELECT throws_ok($$SELECT medpro.crypto_password_hash('x')$$, '42501', NULL,
	'medpro_api cannot call crypto_password_hash');
SELECT throws_ok($$SET medpro.master_key_file = '/tmp/elsewhere.key'$$, '42501', NULL,
	'medpro_api cannot set medpro.master_key_file');
RESET ROLE;
SELECT ok(NOT has_function_privilege('medpro_operator', 'medpro.seal(bytea, text)', 'EXECUTE'),
	'medpro_operator cannot seal');
SELECT ok(has_function_privilege('medpro_operator', 'medpro.master_key_status()', 'EXECUTE'),
	'medpro_operator may check the master key');

-- Argon2id.
CREATE TEMP TABLE tap_pw ON COMMIT DROP AS
	SELECT medpro.crypto_password_hash('tap password') AS h;
SELECT matches(h, '^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$',
	'hashes are Argon2id PHC strings with m=19456, t=2, p=1') FROM tap_pw;
SELECT ok(medpro.crypto_password_verify(h, 'tap password'), 'the right password verifies') FROM tap_pw;
SELECT ok(NOT medpro.crypto_password_verify(h, 'tap passworD'), 'a wrong password does not') FROM tap_pw;
SELECT ok(NOT medpro.crypto_password_verify('$2b$12$abcdefghijklmnopqrstuu', 'x'),
	'a non-Argon2id hash gives false');
SELECT throws_ok($$SELECT medpro.crypto_password_hash('')$$,
	'22023', 'password must not be empty', 'an empty password: 22023');
SELECT throws_ok($$SELECT medpro.crypto_password_hash(repeat('x', 1025))$$,
	'22023', 'password is too long', 'a password over 1024 bytes: 22023');

SELECT * FROM finish();
ROLLBACK;
