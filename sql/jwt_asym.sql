--
-- jwt_asym: the asymmetric algorithms of medpro_jwt_sign, medpro_jwt_verify
-- and medpro_jwt_decode (src/jwt_pkey.c): RS256/384/512, PS256/384/512,
-- ES256/384/512 and EdDSA with PEM keys, every key/algorithm mismatch, the
-- caches of parsed keys and verified tokens.
--
-- Keys are the test-only keys of test/keys/ (pg_regress runs from the top
-- of the tree).  Randomised signatures (PS*, ES*) are never printed; the
-- openssl command line checks every algorithm in test/jwt_openssl.sql.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS medpro CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
\pset null '<null>'

\set rsa_key `cat test/keys/rsa2048.key`
\set rsa_pub `cat test/keys/rsa2048.pub`
\set rsa_pkcs1 `cat test/keys/rsa2048_pkcs1.key`
\set rsa3_key `cat test/keys/rsa3072.key`
\set rsa3_pub `cat test/keys/rsa3072.pub`
\set rsa1k_key `cat test/keys/rsa1024.key`
\set rsa1k_pub `cat test/keys/rsa1024.pub`
\set p256_key `cat test/keys/p256.key`
\set p256_pub `cat test/keys/p256.pub`
\set p256_sec1 `cat test/keys/p256_sec1.key`
\set p256_enc `cat test/keys/p256_encrypted.key`
\set p384_key `cat test/keys/p384.key`
\set p384_pub `cat test/keys/p384.pub`
\set p521_key `cat test/keys/p521.key`
\set p521_pub `cat test/keys/p521.pub`
\set k1_pub `cat test/keys/secp256k1.pub`
\set rsa_huge_pub `cat test/keys/rsa16392_fake.pub`
\set ed_key `cat test/keys/ed25519_rfc8037.key`
\set ed_pub `cat test/keys/ed25519_rfc8037.pub`
\set ed2_pub `cat test/keys/ed25519.pub`
\set ed448_pub `cat test/keys/ed448.pub`
\set x25519_pub `cat test/keys/x25519.pub`
\set claims '{"sub":"42","role":"doctor","exp":4102444800}'
-- 2033-05-18 03:33:20 UTC is 2000000000 s after the epoch.
\set now '''2033-05-18 03:33:20+00''::timestamptz'

-- Runs a statement; returns 'ok' or its SQLSTATE, message and detail.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM ||
		CASE WHEN detail <> '' THEN ' / ' || detail ELSE '' END;
END
$$;
-- The same without the detail (for OpenSSL's own text, which varies by version).
CREATE FUNCTION pg_temp.try_msg(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Segment n of a token, decoded (no checks).
CREATE FUNCTION pg_temp.seg(t text, n int) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64')
	  FROM (SELECT split_part(t, '.', n) AS s) x
$$;
CREATE FUNCTION pg_temp.b64(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT translate(encode(b, 'base64'), E'+/=\n', '-_') $$;
-- The token with its signature replaced by sig.
CREATE FUNCTION pg_temp.with_sig(t text, sig bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' || pg_temp.b64(sig)
$$;

-- Every asymmetric algorithm with a private key to sign and a public key.
CREATE TEMP TABLE k(alg text PRIMARY KEY, priv text, pub text, ord int);
INSERT INTO k VALUES
	('RS256', :'rsa_key', :'rsa_pub', 1), ('RS384', :'rsa3_key', :'rsa3_pub', 2),
	('RS512', :'rsa_key', :'rsa_pub', 3), ('PS256', :'rsa_key', :'rsa_pub', 4),
	('PS384', :'rsa3_key', :'rsa3_pub', 5), ('PS512', :'rsa_key', :'rsa_pub', 6),
	('ES256', :'p256_key', :'p256_pub', 7), ('ES384', :'p384_key', :'p384_pub', 8),
	('ES512', :'p521_key', :'p521_pub', 9), ('EdDSA', :'ed_key', :'ed_pub', 10);

--
-- Round trips: sign with the private key (text and bytea); verify with the
-- public key and with the private key; the header; the signature's size.
--
CREATE TEMP TABLE t AS
	SELECT alg, ord, priv, pub,
	       medpro_jwt_sign(:'claims', priv, alg) AS tok,
	       medpro_jwt_sign(:'claims', convert_to(priv, 'UTF8'), alg, 'kid-' || alg) AS tok_kid
	  FROM k;
SELECT alg,
       medpro_jwt_verify(tok, pub, alg) = (:'claims')::jsonb AS verify_pub,
       medpro_jwt_verify(tok_kid, convert_to(pub, 'UTF8'), alg) = (:'claims')::jsonb AS verify_pub_bytea,
       medpro_jwt_verify(tok, priv, alg) = (:'claims')::jsonb AS verify_priv,
       convert_from(pg_temp.seg(tok_kid, 1), 'UTF8') AS header,
       length(pg_temp.seg(tok, 3)) AS sig_bytes
  FROM t ORDER BY ord;
SELECT alg, d.*
  FROM t, LATERAL medpro_jwt_decode(tok, pub, alg, :now) d ORDER BY ord;

-- Deterministic algorithms give the same token for the same input;
-- randomised ones (PS*: random salt, ES*: random nonce) do not.
SELECT alg, medpro_jwt_sign(:'claims', priv, alg) = tok AS same_token_again
  FROM t ORDER BY ord;
-- EdDSA with the RFC 8037 A.1 key: the exact token (openssl reproduces it
-- in test/jwt_openssl.sql).
SELECT tok FROM t WHERE alg = 'EdDSA';

-- Other accepted key forms: PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY",
-- blanks around the PEM block; a traditional private key signs the same
-- RS256 token as its PKCS#8 form.
SELECT medpro_jwt_sign(:'claims', :'rsa_pkcs1', 'RS256') = (SELECT tok FROM t WHERE alg = 'RS256') AS pkcs1_same_token,
       medpro_jwt_verify((SELECT tok FROM t WHERE alg = 'RS256'), :'rsa_pkcs1', 'RS256') AS pkcs1_verifies,
       medpro_jwt_verify(medpro_jwt_sign(:'claims', :'p256_sec1', 'ES256'), :'p256_pub', 'ES256') AS sec1_signs,
       medpro_jwt_verify((SELECT tok FROM t WHERE alg = 'EdDSA'), E'\n  ' || :'ed_pub' || E'\r\n\n', 'EdDSA') AS blanks_around;

--
-- Key / algorithm mismatches (22023, before any signature is computed).
-- For each algorithm and each kind of key, what verify says of a token
-- that is otherwise irrelevant: "fits" when the key is accepted (the token
-- is then judged: 28000).
--
CREATE TEMP TABLE kinds(kind text, key text, ord int);
INSERT INTO kinds VALUES
	('secret', repeat('s', 64), 1), ('RSA-1024', :'rsa1k_pub', 2), ('RSA-2048', :'rsa_pub', 3),
	('P-256', :'p256_pub', 4), ('P-384', :'p384_pub', 5), ('P-521', :'p521_pub', 6),
	('secp256k1', :'k1_pub', 7), ('Ed25519', :'ed_pub', 8), ('Ed448', :'ed448_pub', 9),
	('X25519', :'x25519_pub', 10);
SELECT a.alg, kinds.kind,
       regexp_replace(pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', 'e30.e30.AA', kinds.key, a.alg)),
                      '^28000: .*', 'fits') AS verify
  FROM (SELECT alg, ord FROM k UNION ALL VALUES ('HS256', -3), ('HS384', -2), ('HS512', -1)) a, kinds
 ORDER BY a.ord, kinds.ord;

-- Signing needs a private key of the right kind.
SELECT alg, pg_temp.try(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims', pub, alg)) AS sign_with_public
  FROM k ORDER BY ord;
SELECT pg_temp.try(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims', :'p256_key', 'RS256')) AS ec_for_rs,
       pg_temp.try(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims', :'p256_key', 'ES384')) AS p256_for_es384,
       pg_temp.try(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims', :'rsa_key', 'EdDSA')) AS rsa_for_eddsa,
       pg_temp.try(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims', :'rsa1k_key', 'PS256')) AS rsa1024_for_ps256;
-- Over 16384 bits (a public key with an arbitrary 16392-bit modulus).
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', 'e30.e30.AA', :'rsa_huge_pub', 'RS256')) AS rsa16392_for_rs256;

-- PEM keys offered for HS*, by every function, as text and as bytea.
SELECT a.alg, f.fn,
       pg_temp.try(format(f.stmt, a.alg)) AS result
  FROM (VALUES ('HS256'), ('HS384'), ('HS512')) a(alg),
       (VALUES ('sign text', format('SELECT medpro_jwt_sign(%L, %L, %%L)', :'claims', :'rsa_key')),
               ('sign bytea', format('SELECT medpro_jwt_sign(%L, convert_to(%L, ''UTF8''), %%L)', :'claims', :'p256_key')),
               ('verify text', format('SELECT medpro_jwt_verify(%L, %L, %%L)', 'e30.e30.AA', :'rsa_pub')),
               ('verify bytea', format('SELECT medpro_jwt_verify(%L, convert_to(%L, ''UTF8''), %%L)', 'e30.e30.AA', :'ed_pub')),
               ('decode text', format('SELECT * FROM medpro_jwt_decode(%L, %L, %%L)', 'e30.e30.AA', E'\n' || :'p384_pub')),
               ('decode null token', format('SELECT * FROM medpro_jwt_decode(NULL, %L, %%L)', :'p521_pub'))) f(fn, stmt)
 ORDER BY a.alg, f.fn;

-- Malformed keys for an asymmetric algorithm.
SELECT what, pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', 'e30.e30.AA', key, 'RS256')) AS verify
  FROM (VALUES
	('empty', ''),
	('only the BEGIN line', '-----BEGIN PUBLIC KEY-----'),
	('END line missing', regexp_replace(:'rsa_pub', '-----END.*', '')),
	('END label differs', replace(:'rsa_pub', 'END PUBLIC', 'END PRIVATE')),
	('text after the block', :'rsa_pub' || 'trailing'),
	('two blocks', :'rsa_pub' || :'rsa_pub'),
	('control character inside', replace(:'rsa_pub', 'MII', E'M\001I')),
	('a certificate label', replace(:'rsa_pub', 'PUBLIC KEY', 'CERTIFICATE')),
	('encrypted PKCS#8', :'p256_enc'),
	('traditional encrypted', E'-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n'),
	('too large', '-----BEGIN PUBLIC KEY-----' || repeat('A', 70000))) v(what, key);
-- A block whose base64 body is damaged: OpenSSL's reason goes into the
-- detail (not shown here: its text depends on the OpenSSL version).
SELECT pg_temp.try_msg(format('SELECT medpro_jwt_verify(%L, %L, %L)', 'e30.e30.AA',
                              replace(:'rsa_pub', 'MIIB', 'MIIC'), 'RS256')) AS damaged_body,
       pg_temp.try_msg(format('SELECT medpro_jwt_sign(%L, %L, %L)', :'claims',
                              replace(:'p256_key', 'MIG', '!!!'), 'ES256')) AS damaged_private;
-- The key is never in a message: no result above contains base64 of a key.
SELECT count(*) AS messages_with_key_text
  FROM (SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', 'e30.e30.AA', kinds.key, a.alg)) AS m
          FROM kinds, (VALUES ('HS256'), ('RS256'), ('ES256'), ('EdDSA')) a(alg)) x
 WHERE m ~ 'MI[IGHC]|MCo|MFk|MHY|MIGb|sss';

-- Arguments first: with a NULL token an unfit key is still 22023; a fit
-- one gives "missing".
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(NULL, %L, %L)', repeat('s', 64), 'ES256')) AS null_token_secret,
       pg_temp.try(format('SELECT medpro_jwt_verify(NULL, %L, %L)', :'p256_pub', 'ES256')) AS null_token_fit;
SELECT * FROM medpro_jwt_decode(NULL, :'p256_pub', 'ES256');
SELECT pg_temp.try(format('SELECT * FROM medpro_jwt_decode(NULL, %L, %L)', :'rsa1k_pub', 'RS256')) AS decode_null_token_short_rsa;

--
-- Tokens that must fail (28000 / decode reasons), with fitting keys.
--
SELECT what, (SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(tok, key, alg, :now)) AS reason
  FROM (
	SELECT 'RS256 as RS384' AS what, tok, pub AS key, 'RS384' AS alg FROM t WHERE alg = 'RS256'
	UNION ALL SELECT 'RS256 as PS256', tok, pub, 'PS256' FROM t WHERE alg = 'RS256'
	UNION ALL SELECT 'PS256 as RS256', tok, pub, 'RS256' FROM t WHERE alg = 'PS256'
	UNION ALL SELECT 'ES256 pinned as ES384 with a P-384 key', tok, :'p384_pub', 'ES384' FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'RS256 under the 3072-bit key', tok, :'rsa3_pub', 'RS256' FROM t WHERE alg = 'RS256'
	UNION ALL SELECT 'EdDSA under another Ed25519 key', tok, :'ed2_pub', 'EdDSA' FROM t WHERE alg = 'EdDSA'
	UNION ALL SELECT 'RS256 signature truncated by a byte', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 1, 255)), pub, alg FROM t WHERE alg = 'RS256'
	UNION ALL SELECT 'RS256 signature one byte longer', pg_temp.with_sig(tok, pg_temp.seg(tok, 3) || '\x00'::bytea), pub, alg FROM t WHERE alg = 'RS256'
	UNION ALL SELECT 'PS384 signature bit flipped', pg_temp.with_sig(tok, set_bit(pg_temp.seg(tok, 3), 100, 1 - get_bit(pg_temp.seg(tok, 3), 100))), pub, alg FROM t WHERE alg = 'PS384'
	UNION ALL SELECT 'ES256 empty signature', pg_temp.with_sig(tok, ''::bytea), pub, alg FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'ES256 R||S of 63 bytes', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 2)), pub, alg FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'ES256 R and S swapped', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 33) || substr(pg_temp.seg(tok, 3), 1, 32)), pub, alg FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'ES256 R = S = 0', pg_temp.with_sig(tok, decode(repeat('00', 64), 'hex')), pub, alg FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'ES256 R and S in DER form', pg_temp.with_sig(tok,
	                  '\x30440220'::bytea || substr(pg_temp.seg(tok, 3), 1, 32) || '\x0220'::bytea || substr(pg_temp.seg(tok, 3), 33, 32)), pub, alg FROM t WHERE alg = 'ES256'
	UNION ALL SELECT 'ES384 as ES256 signature size', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 1, 64)), pub, alg FROM t WHERE alg = 'ES384'
	UNION ALL SELECT 'ES512 R||S of 130 bytes', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 1, 130)), pub, alg FROM t WHERE alg = 'ES512'
	UNION ALL SELECT 'EdDSA 63-byte signature', pg_temp.with_sig(tok, substr(pg_temp.seg(tok, 3), 1, 63)), pub, alg FROM t WHERE alg = 'EdDSA'
	UNION ALL SELECT 'EdDSA header alg none', 'eyJhbGciOiJub25lIn0.' || split_part(tok, '.', 2) || '.', pub, alg FROM t WHERE alg = 'EdDSA'
	UNION ALL SELECT 'EdDSA payload swapped', split_part(tok, '.', 1) || '.' || split_part(medpro_jwt_sign('{"sub":"admin","exp":4102444800}', priv, alg), '.', 2) || '.' || split_part(tok, '.', 3), pub, alg FROM t WHERE alg = 'EdDSA'
  ) x ORDER BY what;
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', tok, pub, 'RS384')) AS verify_error
  FROM t WHERE alg = 'RS256';

-- ECDSA: JWS does not require a low S (RFC 7518 3.4 takes R and S as they
-- are), so (R, n - S), the other valid signature of the same message, is
-- valid too; R or S equal to the group order n, or S + n where it fits in
-- the coordinate size, are not signatures at all.
CREATE FUNCTION pg_temp.b2n(b bytea) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	v numeric := 0;
BEGIN
	FOR i IN 0 .. length(b) - 1 LOOP
		v := v * 256 + get_byte(b, i);
	END LOOP;
	RETURN v;
END
$$;
CREATE FUNCTION pg_temp.n2b(v numeric, len int) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	b bytea := decode(repeat('00', len), 'hex');
BEGIN
	FOR i IN REVERSE len - 1 .. 0 LOOP
		b := set_byte(b, i, mod(v, 256)::int);
		v := div(v, 256);
	END LOOP;
	RETURN CASE WHEN v = 0 THEN b END;		-- NULL when v does not fit
END
$$;
CREATE TEMP TABLE ec_order(alg text, n numeric, len int);
INSERT INTO ec_order VALUES
	('ES256', pg_temp.b2n('\xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'), 32),
	('ES384', pg_temp.b2n('\xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'), 48),
	('ES512', pg_temp.b2n('\x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409'), 66);
SELECT alg,
       (SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(pg_temp.with_sig(tok, r || pg_temp.n2b(o.n - pg_temp.b2n(s), len)), pub, alg, :now)) AS r_n_minus_s,
       (SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(pg_temp.with_sig(tok, pg_temp.n2b(o.n, len) || s), pub, alg, :now)) AS r_is_n,
       (SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(pg_temp.with_sig(tok, r || pg_temp.n2b(o.n, len)), pub, alg, :now)) AS s_is_n,
       CASE WHEN pg_temp.n2b(o.n + pg_temp.b2n(s), len) IS NULL THEN 'does not fit' ELSE
       (SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(pg_temp.with_sig(tok, r || pg_temp.n2b(o.n + pg_temp.b2n(s), len)), pub, alg, :now)) END AS s_plus_n
  FROM (SELECT t.alg, t.tok, t.pub,
               substr(pg_temp.seg(t.tok, 3), 1, o.len) AS r,
               substr(pg_temp.seg(t.tok, 3), o.len + 1) AS s
          FROM t JOIN ec_order o USING (alg)) x JOIN ec_order o USING (alg)
 ORDER BY alg;

--
-- The caches.  A cached token's time claims are checked again on every
-- call: verified before exp, the same token is expired after it.
--
SELECT medpro_jwt_cache_reset();
SELECT * FROM medpro_jwt_cache_stats();
SELECT medpro_jwt_sign('{"sub":"c","exp":2000000000,"nbf":1999999000,"iat":1999998000}', :'ed_key', 'EdDSA') AS ctok \gset
SELECT medpro_jwt_verify(:'ctok', :'ed_pub', 'EdDSA', '2033-05-18 03:33:19+00') AS before_exp;
SELECT * FROM medpro_jwt_cache_stats();
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L, %L)', :'ctok', :'ed_pub', 'EdDSA', '2033-05-18 03:33:50+00')) AS after_exp;
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L)', :'ctok', :'ed_pub', 'EdDSA')) AS wall_clock;
SELECT * FROM medpro_jwt_cache_stats();
-- the hit also applies nbf, iat and the leeway of the moment
SELECT coalesce(d.reason, 'valid') AS at_nbf_minus_31s, d.payload
  FROM medpro_jwt_decode(:'ctok', :'ed_pub', 'EdDSA', '2033-05-18 03:16:09+00') d;
SET medpro.jwt_leeway = 0;
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L, %L)', :'ctok', :'ed_pub', 'EdDSA', '2033-05-18 03:33:20+00')) AS at_exp_leeway_0;
SET medpro.jwt_leeway = 3600;
SELECT medpro_jwt_verify(:'ctok', :'ed_pub', 'EdDSA', '2033-05-18 03:33:20+00') AS at_exp_leeway_3600;
SELECT medpro_jwt_verify(:'ctok', :'ed_pub', 'EdDSA', '2033-05-18 02:16:40+00') AS at_nbf_minus_3600s;
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %L, %L, %L)', :'ctok', :'ed_pub', 'EdDSA', '2033-05-18 02:16:39+00')) AS before_nbf_minus_3600s;
RESET medpro.jwt_leeway;
SELECT * FROM medpro_jwt_cache_stats();
-- A hit is per (algorithm, key, token): another pinned algorithm, another
-- key (even the same key as private PEM) or another token is a miss and is
-- judged from scratch.
SELECT tok AS rtok FROM t WHERE alg = 'RS256' \gset
SELECT medpro_jwt_verify(:'rtok', :'rsa_pub', 'RS256') IS NOT NULL AS rs256_cached;
SELECT coalesce((SELECT reason FROM medpro_jwt_decode(:'rtok', :'rsa_pub', 'PS256')), 'valid') AS same_key_as_ps256,
       coalesce((SELECT reason FROM medpro_jwt_decode(:'ctok', :'ed_key', 'EdDSA', :now)), 'valid') AS private_pem,
       coalesce((SELECT reason FROM medpro_jwt_decode(:'ctok', :'ed2_pub', 'EdDSA', :now)), 'valid') AS other_key;
SELECT * FROM medpro_jwt_cache_stats();
-- Failed signatures are not cached.
SELECT medpro_jwt_cache_reset();
SELECT count(*) FILTER (WHERE reason = 'signature mismatch') AS mismatches
  FROM generate_series(1, 3), medpro_jwt_decode(pg_temp.with_sig(:'ctok', decode(repeat('00', 64), 'hex')), :'ed_pub', 'EdDSA');
SELECT * FROM medpro_jwt_cache_stats();
-- Bounded: 20 distinct key texts (the same key with more and more leading
-- blanks) and 300 distinct tokens keep at most 16 keys and 256 tokens.
-- Each verification returns its own token's payload.
SELECT count(*) FILTER (WHERE medpro_jwt_verify(medpro_jwt_sign(jsonb_build_object('n', i, 'exp', 4102444800), :'ed_key', 'EdDSA'),
                                                repeat(' ', i % 20) || :'ed_pub', 'EdDSA') ->> 'n' = i::text) AS verified
  FROM generate_series(1, 300) i;
SELECT keys <= 16 AS keys_bounded, keys, tokens <= 256 AS tokens_bounded, tokens > 100 AS tokens_kept
  FROM medpro_jwt_cache_stats();
-- Each verification through a table returns its own token's payload
-- (same-length tokens, detoasted row after row), in two passes; the
-- second finds some of them in the cache.
CREATE TEMP TABLE many AS
	SELECT i, medpro_jwt_sign(jsonb_build_object('n', 1000 + i, 'exp', 4102444800), :'ed_key', 'EdDSA') AS tok
	  FROM generate_series(1, 300) i;
SELECT medpro_jwt_cache_reset();
SELECT count(*) FILTER (WHERE medpro_jwt_verify(tok, :'ed_pub', 'EdDSA') ->> 'n' = (1000 + i)::text) AS first_pass,
       count(DISTINCT length(tok)) AS token_lengths
  FROM many;
SELECT token_hits AS hits_after_first_pass FROM medpro_jwt_cache_stats();
SELECT count(*) FILTER (WHERE medpro_jwt_verify(tok, :'ed_pub', 'EdDSA') ->> 'n' = (1000 + i)::text) AS second_pass
  FROM many;
SELECT token_hits > 0 AS second_pass_hit FROM medpro_jwt_cache_stats();
SELECT medpro_jwt_cache_reset();
SELECT * FROM medpro_jwt_cache_stats();
