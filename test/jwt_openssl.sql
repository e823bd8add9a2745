-- pgTAP: medpro's JWTs, for every algorithm, against an independent
-- implementation: the openssl command line, driven by scripts/jwt_openssl.py
-- through psql backticks (pg_prove runs from the top of the tree).  Keys are
-- the test-only keys in test/keys/.  For each algorithm:
--   1. a token signed by medpro verifies in openssl, with the same claims;
--   2. that token with another payload spliced in fails in openssl;
--   3. a token signed by openssl verifies in medpro;
--   4. that token with another payload spliced in fails in medpro;
--   5. deterministic algorithms (HS*, RS*, EdDSA): medpro gives the same
--      token twice and openssl reproduces its signature byte for byte;
--      randomised ones (PS*, ES*): two medpro tokens differ and openssl
--      does not reproduce them.
-- ES*: a DER signature (openssl's own form) is refused by medpro.  Finally
-- openssl confirms the signatures of the asymmetric public vectors.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;

SELECT plan(73);

\set py 'python3 scripts/jwt_openssl.py'
\set rsa_key `cat test/keys/rsa2048.key`
\set rsa_pub `cat test/keys/rsa2048.pub`
\set rsa3_key `cat test/keys/rsa3072.key`
\set rsa3_pub `cat test/keys/rsa3072.pub`
\set p256_key `cat test/keys/p256.key`
\set p256_pub `cat test/keys/p256.pub`
\set p384_key `cat test/keys/p384.key`
\set p384_pub `cat test/keys/p384.pub`
\set p521_key `cat test/keys/p521.key`
\set p521_pub `cat test/keys/p521.pub`
\set ed_key `cat test/keys/ed25519_rfc8037.key`
\set ed_pub `cat test/keys/ed25519_rfc8037.pub`
\set claims '{"sub":"u-1","role":"doctor","exp":4102444800,"iat":1700000000,"name":"Zoë"}'

CREATE TEMP TABLE alg(alg text PRIMARY KEY, priv_file text, pub_file text,
                      priv bytea, pub bytea, deterministic boolean);
INSERT INTO alg VALUES
	('HS256', 'hex:' || repeat('0b', 32), 'hex:' || repeat('0b', 32), decode(repeat('0b', 32), 'hex'), decode(repeat('0b', 32), 'hex'), true),
	('HS384', 'hex:' || repeat('0c', 48), 'hex:' || repeat('0c', 48), decode(repeat('0c', 48), 'hex'), decode(repeat('0c', 48), 'hex'), true),
	('HS512', 'hex:' || repeat('0d', 64), 'hex:' || repeat('0d', 64), decode(repeat('0d', 64), 'hex'), decode(repeat('0d', 64), 'hex'), true),
	('RS256', 'test/keys/rsa2048.key', 'test/keys/rsa2048.pub', convert_to(:'rsa_key', 'UTF8'), convert_to(:'rsa_pub', 'UTF8'), true),
	('RS384', 'test/keys/rsa3072.key', 'test/keys/rsa3072.pub', convert_to(:'rsa3_key', 'UTF8'), convert_to(:'rsa3_pub', 'UTF8'), true),
	('RS512', 'test/keys/rsa2048.key', 'test/keys/rsa2048.pub', convert_to(:'rsa_key', 'UTF8'), convert_to(:'rsa_pub', 'UTF8'), true),
	('PS256', 'test/keys/rsa2048.key', 'test/keys/rsa2048.pub', convert_to(:'rsa_key', 'UTF8'), convert_to(:'rsa_pub', 'UTF8'), false),
	('PS384', 'test/keys/rsa3072.key', 'test/keys/rsa3072.pub', convert_to(:'rsa3_key', 'UTF8'), convert_to(:'rsa3_pub', 'UTF8'), false),
	('PS512', 'test/keys/rsa2048.key', 'test/keys/rsa2048.pub', convert_to(:'rsa_key', 'UTF8'), convert_to(:'rsa_pub', 'UTF8'), false),
	('ES256', 'test/keys/p256.key', 'test/keys/p256.pub', convert_to(:'p256_key', 'UTF8'), convert_to(:'p256_pub', 'UTF8'), false),
	('ES384', 'test/keys/p384.key', 'test/keys/p384.pub', convert_to(:'p384_key', 'UTF8'), convert_to(:'p384_pub', 'UTF8'), false),
	('ES512', 'test/keys/p521.key', 'test/keys/p521.pub', convert_to(:'p521_key', 'UTF8'), convert_to(:'p521_pub', 'UTF8'), false),
	('EdDSA', 'test/keys/ed25519_rfc8037.key', 'test/keys/ed25519_rfc8037.pub', convert_to(:'ed_key', 'UTF8'), convert_to(:'ed_pub', 'UTF8'), true);

-- medpro signs every algorithm twice (to compare), with a kid.
CREATE TEMP TABLE tok AS
	SELECT alg, medpro_jwt_sign(:'claims', priv, alg, 'medpro-' || alg) AS t1,
	       medpro_jwt_sign(:'claims', priv, alg, 'medpro-' || alg) AS t2
	  FROM alg;
SELECT jsonb_agg(jsonb_build_object('alg', a.alg, 'priv', a.priv_file, 'pub', a.pub_file, 'token', t.t1))::text AS spec
  FROM alg a JOIN tok t USING (alg) \gset
\set out `:py batch :'spec'`
CREATE TEMP TABLE res AS
	SELECT a.*, t.t1, t.t2, (:'out')::jsonb -> a.alg AS r FROM alg a JOIN tok t USING (alg);

-- 1, 2: openssl verifies medpro's tokens and rejects them tampered.
SELECT is(r->'verify', (:'claims')::jsonb, alg || ': a token signed by medpro verifies in openssl, same claims')
  FROM res ORDER BY alg;
SELECT is(r->'tampered', '{"invalid":"signature mismatch"}'::jsonb,
          alg || ': openssl rejects a medpro token whose payload was swapped')
  FROM res ORDER BY alg;

-- 3, 4: medpro verifies openssl's tokens and rejects them tampered.
SELECT is(medpro_jwt_verify(r->>'token', pub, alg),
          '{"sub":"openssl-user","exp":4102444800,"scope":["read","write"]}'::jsonb,
          alg || ': a token signed by openssl verifies in medpro')
  FROM res ORDER BY alg;
SELECT is((SELECT reason FROM medpro_jwt_decode(r->>'token_tampered', pub, alg)),
          'signature mismatch', alg || ': medpro rejects an openssl token whose payload was swapped')
  FROM res ORDER BY alg;

-- 5: determinism.
SELECT ok(CASE WHEN deterministic THEN t1 = t2 AND (r->>'resign_same')::boolean
               ELSE t1 <> t2 AND NOT (r->>'resign_same')::boolean END,
          alg || CASE WHEN deterministic
                      THEN ': deterministic: medpro signs the same token twice and openssl reproduces the signature'
                      ELSE ': randomised: two medpro signatures differ, and openssl does not reproduce them' END)
  FROM res ORDER BY alg;

-- ES*: the raw R||S form only; openssl's DER form of a valid signature is refused.
SELECT is((SELECT reason FROM medpro_jwt_decode(r->>'token_der', pub, alg)),
          'signature mismatch', alg || ': a DER-encoded ECDSA signature is refused')
  FROM res WHERE alg LIKE 'ES%' ORDER BY alg;

-- openssl confirms the asymmetric vectors' signatures.
\set v1 `:py vector 'RFC 7515 A.2 RS256'`
\set v2 `:py vector 'RFC 7515 A.3 ES256'`
\set v3 `:py vector 'RFC 7515 A.4 ES512'`
\set v4 `:py vector 'RFC 8037 A.4 EdDSA'`
\set v5 `:py vector 'RFC 7520 4.1 RS256'`
SELECT is(:'v1'::text, 'signature valid', 'RFC 7515 A.2: its RS256 signature is valid (openssl)');
SELECT is(:'v2'::text, 'signature valid', 'RFC 7515 A.3: its ES256 signature is valid (openssl)');
SELECT is(:'v3'::text, 'signature valid', 'RFC 7515 A.4: its ES512 signature is valid (openssl), so medpro rejects it for its payload alone');
SELECT is(:'v4'::text, 'signature valid', 'RFC 8037 A.4: its EdDSA signature is valid (openssl), so medpro rejects it for its payload alone');
SELECT is(:'v5'::text, 'signature valid', 'RFC 7520 4.1: its RS256 signature is valid (openssl), so medpro rejects it for its payload alone');

SELECT * FROM finish();
ROLLBACK;
