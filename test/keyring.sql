-- pgTAP: the keyring.  medpro_key_rotate for every algorithm, who may
-- rotate, import, retire and read the JWK Set, that private and secret
-- material is only stored sealed, and medpro_jwks() checked by code that
-- shares nothing with medpro: scripts/jwks_check.py (Python standard
-- library) rebuilds each JWK's DER public key by hand and the openssl
-- command line checks medpro's signatures with it.  Runs in one
-- transaction, rolled back.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;

SELECT plan(59);

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
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_nobody') THEN
		CREATE ROLE tap_nobody LOGIN;
	END IF;
END $$;
\i test/fixtures/keyring_keys.sql
\set py 'python3 scripts/jwks_check.py'
CREATE FUNCTION pg_temp.b64url(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT rtrim(translate(encode(convert_to(t, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;

--
-- The functions' declarations.
--
SELECT volatility_is('medpro_jwks', '{}'::name[], 'stable', 'medpro_jwks is STABLE');
SELECT is_definer('medpro_jwks', '{}'::name[], 'medpro_jwks is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE proname = 'medpro_jwks'), '{"search_path=pg_catalog, pg_temp"}',
		  'medpro_jwks pins search_path');
SELECT ok(has_function_privilege('medpro_api', 'medpro_jwks()', 'EXECUTE'), 'medpro_api may read the JWK Set');
SELECT ok(NOT has_function_privilege('tap_nobody', 'medpro_jwks()', 'EXECUTE'), 'PUBLIC may not');
SELECT ok(NOT has_function_privilege('medpro_api', 'medpro_key_import(text, text, text, text)', 'EXECUTE'),
		  'medpro_api may not import keys');
SELECT volatility_is('medpro_key_rotate', ARRAY['text'], 'volatile', 'medpro_key_rotate is VOLATILE');
SELECT is_definer('medpro_key_retire', ARRAY['text'], 'medpro_key_retire is SECURITY DEFINER');

--
-- Rotation for every algorithm, by an operator.
--
CREATE TEMP TABLE tap_rot (alg text, n int, kid text);
GRANT ALL ON tap_rot TO PUBLIC;
SET ROLE tap_op;
INSERT INTO tap_rot
SELECT a.alg, a.n, medpro_key_rotate(a.alg)
  FROM unnest('{HS256,HS384,HS512,RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA}'::text[])
	   WITH ORDINALITY AS a(alg, n) ORDER BY a.n;
RESET ROLE;
SELECT is((SELECT count(*) FROM tap_rot WHERE kid ~ '^mp[0-9a-f]{18}$'), 13::bigint, 'every algorithm rotates and returns a kid');
SELECT is((SELECT kid FROM medpro.keys WHERE status = 'active'), (SELECT kid FROM tap_rot WHERE alg = 'EdDSA'),
		  'the newest key is the active one');
SELECT is((SELECT count(*) FROM medpro.keys k JOIN tap_rot USING (kid) WHERE k.status = 'verify'), 12::bigint,
		  'the older ones verify');
SELECT is((SELECT count(*) FROM medpro.keys k JOIN tap_rot r USING (kid)
			WHERE k.secret_sealed IS NOT NULL AND position('BEGIN' IN encode(k.secret_sealed, 'escape')) = 0
			  AND (r.alg LIKE 'HS%') = (k.public_pem IS NULL)), 13::bigint,
		  'secrets and private keys are sealed; asymmetric keys have a public PEM, HMAC keys none');
SELECT is((SELECT count(*) FROM medpro.keys k JOIN tap_rot r USING (kid)
			WHERE CASE WHEN r.alg LIKE 'HS%' THEN false
					   ELSE convert_from(medpro.unseal(k.secret_sealed, 'medpro.keys:' || k.kid), 'UTF8')
							LIKE '-----BEGIN PRIVATE KEY-----%' END),
		  10::bigint, 'a sealed asymmetric key unseals to a PKCS#8 private key');

-- Who may do what.
SET ROLE tap_app;
SELECT throws_ok($$SELECT medpro_key_rotate('ES256')$$, '42501', NULL, 'medpro_api cannot rotate');
SELECT throws_ok($$SELECT medpro_key_retire('mp000000000000000000')$$, '42501', NULL, 'medpro_api cannot retire');
SELECT throws_ok($$SELECT kid FROM medpro.keys$$, '42501', NULL, 'medpro_api cannot read the keyring');
SELECT lives_ok($$SELECT medpro_jwks()$$, 'medpro_api reads the JWK Set');
RESET ROLE;
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT medpro_jwks()$$, '42501', NULL, 'a role without medpro_api cannot');
RESET ROLE;
SET ROLE tap_op;
SELECT throws_ok($$SELECT secret_sealed FROM medpro.keys$$, '42501', NULL, 'operators cannot read sealed material');
SELECT throws_ok($$SELECT medpro.unseal(secret_sealed, 'medpro.keys:' || kid) FROM medpro.keys$$, '42501', NULL,
				 'operators cannot unseal');
SELECT is((SELECT count(*) FROM medpro.keys WHERE public_pem LIKE '%PRIVATE%'), 0::bigint,
		  'what operators can read holds no private key');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-ec', 'ES256', (SELECT pem FROM kr_pem WHERE name = 'ec_pub')),
				 '42501', 'permission denied for function medpro_key_import', 'operators cannot import keys');
SELECT throws_ok($$SELECT medpro_key_rotate('ES257')$$, '22023', 'unsupported JWT algorithm "ES257"', 'an unknown algorithm');
SELECT throws_ok($$SELECT medpro_key_retire('tap-none')$$, '22023', 'key "tap-none" does not exist', 'retiring an unknown key');
RESET ROLE;

--
-- Import (superusers).
--
SELECT lives_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-rsa', 'RS256', (SELECT pem FROM kr_pem WHERE name = 'rsa_pub')),
				'an RSA public key imports for RS256');
SELECT lives_ok(format('SELECT medpro_key_import(%L, %L, %L, %L)', 'tap-ed', 'EdDSA', (SELECT pem FROM kr_pem WHERE name = 'ed_pem'), 'tap-issuer'),
				'an Ed25519 private key imports (its public part) for EdDSA');
SELECT is((SELECT public_pem FROM medpro.keys WHERE kid = 'tap-ed'), (SELECT pem FROM kr_pem WHERE name = 'ed_pub'),
		  'only the public part of an imported private key is kept');
SELECT is((SELECT secret_sealed FROM medpro.keys WHERE kid = 'tap-ed'), NULL, 'nothing sealed for an imported public key');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-x', 'ES384', (SELECT pem FROM kr_pem WHERE name = 'ec_pub')),
				 '22023', 'key type does not fit ES384', 'a P-256 key for ES384');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-x', 'RS256', (SELECT pem FROM kr_pem WHERE name = 'rsa1024_pub')),
				 '22023', 'RSA key too short for RS256', 'an RSA key under 2048 bits');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-x', 'HS512', (SELECT pem FROM kr_pem WHERE name = 'rsa_pub')),
				 '22023', 'key type does not fit HS512', 'a PEM key as an HMAC secret');
SELECT throws_ok($$SELECT medpro_key_import('tap-x', 'EdDSA', repeat('s', 64))$$,
				 '22023', 'key is not a PEM key', 'a secret for EdDSA');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-x', 'ES256', (SELECT pem FROM kr_pem WHERE name = 'ec_enc')),
				 '22023', 'encrypted private keys are not accepted', 'an encrypted private key');
SELECT throws_ok(format('SELECT medpro_key_import(%L, %L, %L)', 'tap-rsa', 'RS256', (SELECT pem FROM kr_pem WHERE name = 'rsa_pub')),
				 '42710', 'key "tap-rsa" already exists', 'a kid is imported once');

--
-- The JWK Set, checked independently.
--
SELECT medpro_jwks() AS jwks \gset
\set shape `:py shape :'jwks'`
SELECT is(:'shape'::text, 'ok 12', 'the JWK Set has the RFC 7517/7518/8037 form: 10 generated and 2 imported public keys, no secret');
\set pems `:py pems :'jwks'`
SELECT is((SELECT count(*) FROM medpro.keys k JOIN json_each_text(:'pems') p ON p.key = k.kid
			WHERE p.value = k.public_pem), 12::bigint,
		  'each JWK, rebuilt into DER by hand, is byte for byte the stored public key');
SELECT is((SELECT count(*) FROM jsonb_array_elements(:'jwks'::jsonb -> 'keys') j
			WHERE j ->> 'kid' IN (SELECT kid FROM tap_rot WHERE alg LIKE 'HS%')), 0::bigint,
		  'no HMAC key in the JWK Set');
SELECT is((SELECT j ->> 'kid' FROM jsonb_array_elements(:'jwks'::jsonb -> 'keys') WITH ORDINALITY AS e(j, n) ORDER BY n LIMIT 1),
		  (SELECT kid FROM tap_rot WHERE alg = 'EdDSA'), 'the active key comes first');

-- A signature made with a generated key's private half (by the openssl
-- command line, from the unsealed PEM) verifies with its JWK; a changed
-- one does not.  (The PEM travels base64-encoded: psql passes no newline
-- to a shell command.)
SELECT kid AS ed_kid, replace(encode(medpro.unseal(secret_sealed, 'medpro.keys:' || kid), 'base64'), E'\n', '') AS ed_priv
  FROM medpro.keys WHERE kid = (SELECT kid FROM tap_rot WHERE alg = 'EdDSA') \gset
SELECT pg_temp.b64url(jsonb_build_object('alg', 'EdDSA', 'kid', :'ed_kid')::text) || '.' ||
	   pg_temp.b64url('{"exp":4102444800}') AS ed_input \gset
\set ed_sig `d=$(mktemp -d) && printf '%s' :'ed_priv' | base64 -d > $d/key && printf '%s' :'ed_input' > $d/in && openssl pkeyutl -sign -inkey $d/key -rawin -in $d/in | base64 -w0 | tr '+/' '-_' | tr -d '='; rm -rf $d`
SELECT :'ed_input' || '.' || :'ed_sig' AS ed_token \gset
\set ed_ok `:py verify :'jwks' :'ed_token'`
SELECT is(:'ed_ok'::text, 'signature valid EdDSA', 'the EdDSA JWK verifies a signature of its private key (openssl)');
-- (one character in the middle changed, so the base64url stays canonical)
SELECT :'ed_input' || '.' || overlay(:'ed_sig' PLACING CASE WHEN substr(:'ed_sig', 20, 1) = 'A' THEN 'B' ELSE 'A' END
									 FROM 20 FOR 1) AS ed_bad \gset
\set ed_bad_ok `:py verify :'jwks' :'ed_bad'`
SELECT matches(:'ed_bad_ok'::text, '^signature invalid', 'and not a changed signature');

--
-- medpro_login with each asymmetric key active: the token verifies in
-- medpro_authenticate and, through the JWK Set alone, with openssl.
--
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a1a1a1a1-0000-4000-8000-00000000c0de', 'Tap Keyring Clinic', 'FR', 'tap-kr@clinic.test', 'active');
SELECT lives_ok($$SELECT medpro_create_user('tap-kr@a.test', 'tap keyring password', 'doctor', NULL, NULL,
				'a1a1a1a1-0000-4000-8000-00000000c0de')$$, 'a user to log in');
CREATE TEMP TABLE tap_tok (alg text, n int, kid text, tok text);
GRANT ALL ON tap_tok TO PUBLIC;
DO $$
DECLARE
	a text;
	i int := 0;
	k text;
BEGIN
	FOREACH a IN ARRAY '{RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA}'::text[] LOOP
		i := i + 1;
		k := medpro_key_rotate(a);
		INSERT INTO tap_tok VALUES (a, i, k, medpro_login('tap-kr@a.test', 'tap keyring password'));
	END LOOP;
END
$$;
SET ROLE tap_app;
SELECT is((SELECT count(*) FROM tap_tok WHERE (medpro_authenticate(tok) ->> 'clinic_id') = 'a1a1a1a1-0000-4000-8000-00000000c0de'
			AND convert_from(decode(rpad(translate(split_part(tok, '.', 1), '-_', '+/'),
										 (length(split_part(tok, '.', 1)) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb
				@> jsonb_build_object('alg', alg, 'kid', kid)),
		  10::bigint, 'each login token names its key and algorithm and authenticates, older keys included');
RESET ROLE;
SELECT medpro_jwks() AS jwks2 \gset
SELECT max(tok) FILTER (WHERE alg = 'RS256') AS t1, max(tok) FILTER (WHERE alg = 'RS384') AS t2,
	   max(tok) FILTER (WHERE alg = 'RS512') AS t3, max(tok) FILTER (WHERE alg = 'PS256') AS t4,
	   max(tok) FILTER (WHERE alg = 'PS384') AS t5, max(tok) FILTER (WHERE alg = 'PS512') AS t6,
	   max(tok) FILTER (WHERE alg = 'ES256') AS t7, max(tok) FILTER (WHERE alg = 'ES384') AS t8,
	   max(tok) FILTER (WHERE alg = 'ES512') AS t9, max(tok) FILTER (WHERE alg = 'EdDSA') AS t10
  FROM tap_tok \gset
\set v1 `:py verify :'jwks2' :'t1'`
\set v2 `:py verify :'jwks2' :'t2'`
\set v3 `:py verify :'jwks2' :'t3'`
\set v4 `:py verify :'jwks2' :'t4'`
\set v5 `:py verify :'jwks2' :'t5'`
\set v6 `:py verify :'jwks2' :'t6'`
\set v7 `:py verify :'jwks2' :'t7'`
\set v8 `:py verify :'jwks2' :'t8'`
\set v9 `:py verify :'jwks2' :'t9'`
\set v10 `:py verify :'jwks2' :'t10'`
SELECT is(:'v1'::text, 'signature valid RS256', 'openssl verifies an RS256 login token with the JWK Set');
SELECT is(:'v2'::text, 'signature valid RS384', 'openssl verifies an RS384 login token with the JWK Set');
SELECT is(:'v3'::text, 'signature valid RS512', 'openssl verifies an RS512 login token with the JWK Set');
SELECT is(:'v4'::text, 'signature valid PS256', 'openssl verifies a PS256 login token with the JWK Set');
SELECT is(:'v5'::text, 'signature valid PS384', 'openssl verifies a PS384 login token with the JWK Set');
SELECT is(:'v6'::text, 'signature valid PS512', 'openssl verifies a PS512 login token with the JWK Set');
SELECT is(:'v7'::text, 'signature valid ES256', 'openssl verifies an ES256 login token with the JWK Set');
SELECT is(:'v8'::text, 'signature valid ES384', 'openssl verifies an ES384 login token with the JWK Set');
SELECT is(:'v9'::text, 'signature valid ES512', 'openssl verifies an ES512 login token with the JWK Set');
SELECT is(:'v10'::text, 'signature valid EdDSA', 'openssl verifies an EdDSA login token with the JWK Set');
-- Another payload under an ES256 token's signature fails with openssl too.
SELECT split_part(:'t7', '.', 1) || '.' || pg_temp.b64url('{"sub":"x","exp":4102444800}') || '.' || split_part(:'t7', '.', 3) AS t7bad \gset
\set v7bad `:py verify :'jwks2' :'t7bad'`
SELECT matches(:'v7bad'::text, '^signature invalid', 'openssl rejects a swapped payload under an ES256 signature');
SELECT throws_ok(format('SELECT medpro_authenticate(%L)', :'t7bad'), '28000', 'invalid token: signature mismatch',
				 'so does medpro_authenticate');

--
-- Retirement.
--
SET ROLE tap_op;
SELECT lives_ok(format('SELECT medpro_key_retire(%L)', (SELECT kid FROM tap_rot WHERE alg = 'ES384')), 'an operator retires a key');
SELECT lives_ok(format('SELECT medpro_key_retire(%L)', (SELECT kid FROM tap_rot WHERE alg = 'ES384')), 'retiring twice is a no-op');
RESET ROLE;
SELECT is((SELECT secret_sealed FROM medpro.keys WHERE kid = (SELECT kid FROM tap_rot WHERE alg = 'ES384')), NULL,
		  'a retired key''s sealed private key is erased');
SELECT is((SELECT count(*) FROM jsonb_array_elements(medpro_jwks() -> 'keys') j
			WHERE j ->> 'kid' = (SELECT kid FROM tap_rot WHERE alg = 'ES384')), 0::bigint,
		  'a retired key leaves the JWK Set');
SELECT is(jsonb_array_length(medpro_jwks() -> 'keys'), 21, 'the others stay');

SELECT * FROM finish();
ROLLBACK;
