-- pgTAP: medpro_jwt_verify / medpro_jwt_decode / medpro_jwt_sign against the
-- public test vectors, read unmodified from $MEDPRO_VECTORS/jwt_public.json
-- (default ../shared/vectors).  Every vector's stated outcome is asserted:
-- RFC signatures verify (at the vector's time; expired under the real
-- clock), RFC payloads that are not JSON objects are rejected as JWTs (after
-- the signature: a changed signature fails earlier), "none" is refused.
-- That the pgjwt fixtures' signatures are valid under their 6-byte key
-- (which medpro refuses) is checked by Python in test/jwt_interop.sql; the
-- asymmetric vectors' signatures are also confirmed by openssl in
-- test/jwt_openssl.sql.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;

\set vectors `cat "${MEDPRO_VECTORS:-../shared/vectors}/jwt_public.json"`
CREATE TEMP TABLE vec AS
	SELECT e->>'name' AS name, e->>'token' AS token, e->>'algorithm' AS alg,
	       CASE WHEN e ? 'key_hex' THEN decode(e->>'key_hex', 'hex')
	            WHEN e ? 'key_text' THEN convert_to(e->>'key_text', 'UTF8')
	            WHEN e ? 'key_pem' THEN convert_to(e->>'key_pem', 'UTF8') END AS key,
	       (e->>'at')::timestamptz AS at, e->'claims' AS claims, e
	  FROM jsonb_array_elements((:'vectors')::jsonb->'vectors') e;

-- The vectors this file makes assertions about.
CREATE TEMP TABLE covered(name text PRIMARY KEY);
INSERT INTO covered VALUES ('RFC 7515 A.1 HS256'), ('RFC 7515 A.5 unsecured'), ('RFC 7520 4.4 HS256'),
	('pgjwt fixture HS256'), ('pgjwt fixture HS384'), ('pgjwt fixture HS512'),
	('RFC 7515 A.2 RS256'), ('RFC 7515 A.3 ES256'), ('RFC 7515 A.4 ES512'),
	('RFC 8037 A.4 EdDSA'), ('RFC 7520 4.1 RS256');

-- The token with the first character of its signature changed.
CREATE FUNCTION pg_temp.badsig(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT regexp_replace(t, '\.[^.]*$', '') || '.' ||
	       CASE WHEN left(split_part(t, '.', 3), 1) = 'A' THEN 'B' ELSE 'A' END ||
	       substr(split_part(t, '.', 3), 2)
$$;

-- Segment n of a token, decoded (no checks), for comparisons.
CREATE FUNCTION pg_temp.seg(t text, n int) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64')
	  FROM (SELECT split_part(t, '.', n) AS s) x
$$;

SELECT plan(42);

SELECT cmp_ok((SELECT count(*)::int FROM vec), '>=', 11, 'the vector file has its 11 vectors');
SELECT is(ARRAY(SELECT name FROM vec WHERE name NOT IN (SELECT name FROM covered) ORDER BY 1),
          '{}'::text[], 'every vector in the file has assertions here');
SELECT is((SELECT count(*)::int FROM vec JOIN covered USING (name)), 11, 'the covered vectors are all in the file');

-- RFC 7515 A.1: valid at its time (with its claims), expired under the real clock.
SELECT is(medpro_jwt_verify(token, key, alg, at), claims,
          'RFC 7515 A.1 verifies at its "at" and returns its claims')
  FROM vec WHERE name = 'RFC 7515 A.1 HS256';
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '28000', 'invalid token: expired', 'RFC 7515 A.1 is expired under the real clock')
  FROM vec WHERE name = 'RFC 7515 A.1 HS256';
SELECT is((SELECT row(d.valid, d.reason, d.payload = v.claims)::text
             FROM medpro_jwt_decode(v.token, v.key, v.alg) d),
          '(f,expired,t)', 'RFC 7515 A.1 decodes with a valid signature but expired')
  FROM vec v WHERE name = 'RFC 7515 A.1 HS256';
SELECT is((SELECT d.header FROM medpro_jwt_decode(v.token, v.key, v.alg, v.at) d),
          convert_from(pg_temp.seg(v.token, 1), 'UTF8')::jsonb,
          'RFC 7515 A.1 header (with CRLF whitespace) decodes')
  FROM vec v WHERE name = 'RFC 7515 A.1 HS256';
SELECT is((SELECT d.reason FROM medpro_jwt_decode(v.token, v.key || v.key, v.alg, v.at) d),
          'signature mismatch', 'RFC 7515 A.1 fails under another key')
  FROM vec v WHERE name = 'RFC 7515 A.1 HS256';
SELECT is((SELECT d.reason FROM medpro_jwt_decode(v.token, v.key, 'HS512', v.at) d),
          'algorithm not allowed', 'RFC 7515 A.1 fails when HS512 is pinned')
  FROM vec v WHERE name = 'RFC 7515 A.1 HS256';

-- RFC 7515 A.5: alg "none" is never accepted.
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '28000', 'invalid token: algorithm not allowed', 'RFC 7515 A.5 (alg none) is rejected')
  FROM vec WHERE name = 'RFC 7515 A.5 unsecured';
SELECT is((SELECT row(d.valid, d.reason, d.payload IS NULL)::text
             FROM medpro_jwt_decode(v.token, v.key, v.alg, '2011-03-22 18:00:00+00') d),
          '(f,"algorithm not allowed",t)', 'RFC 7515 A.5 is rejected even at its time, and its payload is not parsed')
  FROM vec v WHERE name = 'RFC 7515 A.5 unsecured';
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, 'none'),
                 '22023', 'unsupported JWT algorithm "none"', 'pinning "none" is a bad argument')
  FROM vec WHERE name = 'RFC 7515 A.5 unsecured';

-- RFC 7520 4.4: the signature is valid, the payload is not a JSON object.
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '28000', 'invalid token: payload is not a JSON object', 'RFC 7520 4.4 is rejected: payload not a JSON object')
  FROM vec WHERE name = 'RFC 7520 4.4 HS256';
SELECT is((SELECT row(d.valid, d.reason, d.header->>'kid', d.payload IS NULL)::text
             FROM medpro_jwt_decode(v.token, v.key, v.alg) d),
          '(f,"payload is not a JSON object",018c0ae5-4d9b-471b-bfd6-eef314bc7037,t)',
          'RFC 7520 4.4 decodes: header with kid, reason')
  FROM vec v WHERE name = 'RFC 7520 4.4 HS256';
SELECT is((SELECT d.reason FROM medpro_jwt_decode(
              regexp_replace(v.token, '.$', CASE WHEN right(v.token, 1) = 'A' THEN 'E' ELSE 'A' END), v.key, v.alg) d),
          'signature mismatch', 'RFC 7520 4.4 with its last signature character changed fails earlier, at the signature')
  FROM vec v WHERE name = 'RFC 7520 4.4 HS256';
SELECT is((SELECT d.reason FROM medpro_jwt_decode(v.token, decode(repeat('00', 32), 'hex'), v.alg) d),
          'signature mismatch', 'RFC 7520 4.4 under another key fails at the signature')
  FROM vec v WHERE name = 'RFC 7520 4.4 HS256';

-- pgjwt fixtures: the 6-byte secret is refused (22023) by verify and decode;
-- medpro's serialisation reproduces the fixtures' header and payload segments.
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '22023', format('HMAC key too short for %s', alg), name || ': the 6-byte key is refused by verify')
  FROM vec WHERE name LIKE 'pgjwt fixture HS%' ORDER BY name;
SELECT throws_ok(format('SELECT * FROM medpro_jwt_decode(%L, %L, %L)', token, convert_from(key, 'UTF8'), alg),
                 '22023', format('HMAC key too short for %s', alg), name || ': the 6-byte text key is refused by decode')
  FROM vec WHERE name LIKE 'pgjwt fixture HS%' ORDER BY name;
SELECT is(regexp_replace(medpro_jwt_sign(claims, decode(repeat('5a', 64), 'hex'), alg), '\.[^.]*$', ''),
          regexp_replace(token, '\.[^.]*$', ''),
          name || ': medpro signs its claims to the same header and payload segments')
  FROM vec WHERE name LIKE 'pgjwt fixture HS%' ORDER BY name;

-- RFC 7515 A.2 (RS256) and A.3 (ES256, raw R||S): valid at their time,
-- with the claims of their payload; expired under the real clock.
SELECT is(medpro_jwt_verify(token, key, alg, at), convert_from(pg_temp.seg(token, 2), 'UTF8')::jsonb,
          name || ' verifies at its "at" and returns its claims')
  FROM vec WHERE name IN ('RFC 7515 A.2 RS256', 'RFC 7515 A.3 ES256') ORDER BY name;
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '28000', 'invalid token: expired', name || ' is expired under the real clock')
  FROM vec WHERE name IN ('RFC 7515 A.2 RS256', 'RFC 7515 A.3 ES256') ORDER BY name;
SELECT is((SELECT d.reason FROM medpro_jwt_decode(pg_temp.badsig(v.token), v.key, v.alg, v.at) d),
          'signature mismatch', v.name || ' with a changed signature fails')
  FROM vec v WHERE name IN ('RFC 7515 A.2 RS256', 'RFC 7515 A.3 ES256') ORDER BY name;
SELECT is((SELECT d.reason FROM medpro_jwt_decode(v.token, v.key, 'PS256', v.at) d),
          'algorithm not allowed', 'RFC 7515 A.2 fails when PS256 is pinned (same RSA key)')
  FROM vec v WHERE name = 'RFC 7515 A.2 RS256';
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L, %L)', v.token, w.key, v.alg, v.at),
                 '22023', 'key for ES256 must be an EC P-256 key', 'RFC 7515 A.3 under the RSA key of A.2 is a bad argument')
  FROM vec v, vec w WHERE v.name = 'RFC 7515 A.3 ES256' AND w.name = 'RFC 7515 A.2 RS256';

-- RFC 7515 A.4 (ES512, P-521), RFC 8037 A.4 (EdDSA) and RFC 7520 4.1 (RS256):
-- the signature is valid, the payload is not a JSON object.
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, %L::bytea, %L)', token, key, alg),
                 '28000', 'invalid token: payload is not a JSON object', name || ' is rejected: payload not a JSON object')
  FROM vec WHERE name IN ('RFC 7515 A.4 ES512', 'RFC 8037 A.4 EdDSA', 'RFC 7520 4.1 RS256') ORDER BY name;
SELECT is((SELECT row(d.valid, d.reason, d.header->>'alg', d.payload IS NULL)::text
             FROM medpro_jwt_decode(v.token, v.key, v.alg) d),
          format('(f,"payload is not a JSON object",%s,t)', v.alg), v.name || ' decodes: its header, the reason, no payload')
  FROM vec v WHERE name IN ('RFC 7515 A.4 ES512', 'RFC 8037 A.4 EdDSA', 'RFC 7520 4.1 RS256') ORDER BY name;
SELECT is((SELECT d.reason FROM medpro_jwt_decode(pg_temp.badsig(v.token), v.key, v.alg) d),
          'signature mismatch', v.name || ' with a changed signature fails earlier, at the signature')
  FROM vec v WHERE name IN ('RFC 7515 A.4 ES512', 'RFC 8037 A.4 EdDSA', 'RFC 7520 4.1 RS256') ORDER BY name;

SELECT * FROM finish();
ROLLBACK;
