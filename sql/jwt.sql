--
-- jwt: medpro_jwt_sign, medpro_jwt_verify and medpro_jwt_decode
-- (src/jwt.c, sql/ext/10_jwt.sql, docs/jwt.md).
--
-- Runs as a superuser after setup.  Every time-dependent check passes "at",
-- or uses exp far in the past or future, so the output does not depend on
-- the clock.  Tokens with hand-made headers and payloads are signed by an
-- HMAC written in SQL below (an implementation independent of medpro's).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS medpro CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
\pset null '<null>'

-- Keys: exactly the minimum length for each algorithm.
\set k32 'decode(repeat(''0b'', 32), ''hex'')'
\set k48 'decode(repeat(''0c'', 48), ''hex'')'
\set k64 'decode(repeat(''0d'', 64), ''hex'')'
-- "now" for most checks: 2033-05-18 03:33:20 UTC is 2000000000 s after the epoch.
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

-- Unpadded base64url of bytes, and of the UTF-8 bytes of a text.
CREATE FUNCTION pg_temp.b64(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT translate(encode(b, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION pg_temp.b64t(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT pg_temp.b64(convert_to(t, 'UTF8')) $$;

-- Segment n of a token, decoded to text (no checks).
CREATE FUNCTION pg_temp.seg(t text, n int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT convert_from(decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='),
							   'base64'), 'UTF8')
	  FROM (SELECT split_part(t, '.', n) AS s) x
$$;

-- HMAC (RFC 2104) in SQL on top of sha256/sha384/sha512.
CREATE FUNCTION pg_temp.h(b bytea, alg text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE alg WHEN 'HS256' THEN sha256(b) WHEN 'HS384' THEN sha384(b) ELSE sha512(b) END
$$;
CREATE FUNCTION pg_temp.hmac(key bytea, msg bytea, alg text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	bs int := CASE alg WHEN 'HS256' THEN 64 ELSE 128 END;
	k bytea := key;
	ipad bytea;
	opad bytea;
BEGIN
	IF length(k) > bs THEN
		k := pg_temp.h(k, alg);
	END IF;
	k := k || decode(repeat('00', bs - length(k)), 'hex');
	ipad := k;
	opad := k;
	FOR i IN 0 .. bs - 1 LOOP
		ipad := set_byte(ipad, i, get_byte(k, i) # 54);
		opad := set_byte(opad, i, get_byte(k, i) # 92);
	END LOOP;
	RETURN pg_temp.h(opad || pg_temp.h(ipad || msg, alg), alg);
END
$$;

-- A token with exactly this header and payload text, signed in SQL.
CREATE FUNCTION pg_temp.mk(header text, payload text, key bytea DEFAULT :k32,
						   alg text DEFAULT 'HS256') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT s || '.' || pg_temp.b64(pg_temp.hmac(key, convert_to(s, 'UTF8'), alg))
	  FROM (SELECT pg_temp.b64t(header) || '.' || pg_temp.b64t(payload) AS s) x
$$;
-- Same from raw bytes (which need not be UTF-8).
CREATE FUNCTION pg_temp.mkb(header bytea, payload bytea, key bytea DEFAULT :k32) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT s || '.' || pg_temp.b64(pg_temp.hmac(key, convert_to(s, 'UTF8'), 'HS256'))
	  FROM (SELECT pg_temp.b64(header) || '.' || pg_temp.b64(payload) AS s) x
$$;
-- Same with the usual header.
CREATE FUNCTION pg_temp.mkp(payload text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT pg_temp.mk('{"alg":"HS256","typ":"JWT"}', payload) $$;

-- The outcome of checking a token: 'valid' or the reason.
CREATE FUNCTION pg_temp.why(t text, key bytea DEFAULT :k32, alg text DEFAULT 'HS256',
							at timestamptz DEFAULT :now) RETURNS text
LANGUAGE sql AS $$
	SELECT coalesce(reason, 'valid') FROM medpro_jwt_decode(t, key, alg, at)
$$;

--
-- The SQL objects
--
SELECT p.oid::regprocedure AS function, provolatile, proparallel, proisstrict,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p WHERE proname LIKE 'medpro\_jwt\_%' ORDER BY 1::text;

--
-- Signing: exact output
--
-- The pgjwt fixture's claims give the fixture's header and payload segments
-- byte for byte (the signature differs: the fixture's 6-byte key is refused).
SELECT medpro_jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', :k32);
SELECT split_part(medpro_jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', :k32), '.', 2)
     = 'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9' AS pgjwt_payload_segment;
-- The SQL HMAC agrees with medpro's signature.
SELECT pg_temp.mkp('{"sub":"1234567890","name":"John Doe","admin":true}')
     = medpro_jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', :k32) AS sql_hmac_agrees;
-- Header: alg, typ, then kid when given (escaped as JSON).
SELECT a AS algorithm, pg_temp.seg(medpro_jwt_sign('{}', k, a), 1) AS header
  FROM (VALUES ('HS256', :k32), ('HS384', :k48), ('HS512', :k64)) v(a, k);
SELECT pg_temp.seg(medpro_jwt_sign('{}', :k32, 'HS256', 'key-1'), 1) AS with_kid,
       pg_temp.seg(medpro_jwt_sign('{}', :k32, 'HS256', 'a"b\c' || chr(10) || 'é'), 1) AS escaped_kid,
       pg_temp.seg(medpro_jwt_sign('{}', :k32, kid => NULL), 1) AS null_kid;
-- Payload: compact, jsonb key order, PostgreSQL's escaping, numbers as jsonb prints them.
SELECT pg_temp.seg(medpro_jwt_sign(p, :k32), 2) AS payload
  FROM (VALUES ('{"b": 1, "a": [1, 2.50, -0, 1e3, true, false, null], "c": {"y": {}, "x": []}}'::jsonb),
               (jsonb_build_object('s', E'quote" backslash\\ slash/ tab\t nl\n cr\r ff\f bs\b \u0001 \u001f é €')),
               ('{"": "", "long key": "ünïcödé 🎉"}')) v(p);
-- Signature lengths (base64url of 32, 48, 64 bytes).
SELECT a AS algorithm, length(split_part(medpro_jwt_sign('{}', k, a), '.', 3)) AS signature_length
  FROM (VALUES ('HS256', :k32), ('HS384', :k48), ('HS512', :k64)) v(a, k);
-- Signing is deterministic and the key matters.
SELECT medpro_jwt_sign('{"a":1}', :k32) = medpro_jwt_sign('{"a":1}', :k32) AS same,
       medpro_jwt_sign('{"a":1}', :k32) <> medpro_jwt_sign('{"a":1}', decode(repeat('0a', 32), 'hex')) AS key_matters;
-- A text key stands for its UTF-8 bytes: 16 × "é" is 32 bytes.
SELECT medpro_jwt_sign('{"a":1}', repeat('é', 16))
     = medpro_jwt_sign('{"a":1}', convert_to(repeat('é', 16), 'UTF8')) AS text_key_is_utf8;
-- Untyped literals pick the text overload.
SELECT medpro_jwt_sign('{"a":1}', 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk')
     = medpro_jwt_sign('{"a":1}', convert_to('kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk', 'UTF8')) AS literal_is_text;

--
-- Round trips: every algorithm, bytea and text keys, real clock (exp in 2100)
--
SELECT a AS algorithm,
       medpro_jwt_verify(medpro_jwt_sign(p, k, a), k, a) = p AS bytea_key,
       medpro_jwt_verify(medpro_jwt_sign(p, encode(k, 'hex'), a), encode(k, 'hex'), a) = p AS text_key,
       medpro_jwt_verify(medpro_jwt_sign(p, encode(k, 'hex'), a), convert_to(encode(k, 'hex'), 'UTF8'), a) = p AS text_key_as_bytea
  FROM (VALUES ('HS256', :k32), ('HS384', :k48), ('HS512', :k64)) v(a, k),
       (VALUES ('{"sub":"u1","exp":4102444800,"nested":{"deep":[1,{"x":"y"}]},"n":1.5}'::jsonb)) w(p);
-- Claims come back as signed, named arguments work.
SELECT medpro_jwt_verify(token => medpro_jwt_sign('{"sub":"u1","exp":4102444800}', :k32, kid => 'k1'),
                         key => :k32, algorithm => 'HS256');
SELECT * FROM medpro_jwt_decode(medpro_jwt_sign('{"sub":"u1","exp":4102444800}', :k32, 'HS256', 'k1'), :k32);
-- A token from another implementation, with whitespace: RFC 7515 appendix A.1 at its time.
SELECT medpro_jwt_verify('eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
                         decode('0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebfd3fb5a92d20647ef968ab4c377623d223d2e2172052e4f08c0cd9af567d080a3', 'hex'),
                         'HS256', '2011-03-22 18:00:00+00');
-- ... and the real clock says it expired.
SELECT pg_temp.try($$SELECT medpro_jwt_verify('eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
                         decode('0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebfd3fb5a92d20647ef968ab4c377623d223d2e2172052e4f08c0cd9af567d080a3', 'hex'))$$) AS real_clock;

--
-- Bad arguments: 22023, for sign, verify and decode alike
--
SELECT pg_temp.try(s) AS outcome FROM (VALUES
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0b', 31), 'hex'))$$),
	($$SELECT medpro_jwt_sign('{}', ''::bytea)$$),
	($$SELECT medpro_jwt_sign('{}', ''::text)$$),
	($$SELECT medpro_jwt_sign('{}', repeat('é', 15))$$),
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0c', 47), 'hex'), 'HS384')$$),
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0d', 63), 'hex'), 'HS512')$$),
	($$SELECT medpro_jwt_sign('{}', 'secret')$$),
	($$SELECT medpro_jwt_verify('a.b.c', decode(repeat('0b', 31), 'hex'))$$),
	($$SELECT medpro_jwt_verify('a.b.c', decode(repeat('0b', 32), 'hex'), 'HS384')$$),
	($$SELECT * FROM medpro_jwt_decode('a.b.c', decode(repeat('0c', 48), 'hex'), 'HS512')$$),
	($$SELECT * FROM medpro_jwt_decode(NULL, 'secret')$$),
	($$SELECT medpro_jwt_verify(NULL, 'secret')$$)) v(s);
-- Algorithm names: unknown ones, and RS256, ES256, EdDSA, which are known but
-- refuse a secret (sql/jwt_asym.sql tests the asymmetric algorithms).
SELECT left(a, 12) AS algorithm, pg_temp.try(format('SELECT medpro_jwt_sign(%L, %s, %L)', '{}', :'k64', a)) AS sign,
       pg_temp.try(format('SELECT medpro_jwt_verify(%L, %s, %L)', 'a.b.c', :'k64', a)) AS verify,
       pg_temp.try(format('SELECT * FROM medpro_jwt_decode(%L, %s, %L)', 'a.b.c', :'k64', a)) AS decode
  FROM (VALUES ('none'), ('hs256'), ('Hs256'), ('HS256 '), ('RS256'), ('ES256'), ('EdDSA'), ('HS1024'),
               (''), ('HS256"; DROP'), (repeat('x', 100))) v(a);
-- A key passed as the algorithm (arguments swapped) is not echoed.
SELECT pg_temp.try($$SELECT medpro_jwt_verify('a.b.c', 'HS256', 'my-very-secret-key-0123456789abcdef')$$) AS swapped;
SELECT pg_temp.try(s) AS outcome FROM (VALUES
	($$SELECT medpro_jwt_sign(NULL, decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('{}', NULL::bytea)$$),
	($$SELECT medpro_jwt_sign('{}', NULL)$$),
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0b', 32), 'hex'), NULL)$$),
	($$SELECT medpro_jwt_sign('[1]', decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('"x"', decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('1', decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('null', decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0b', 32), 'hex'), 'HS256', repeat('k', 800))$$),
	($$SELECT medpro_jwt_sign('{}', decode(repeat('0b', 32), 'hex'), 'HS256', repeat('k', 100000))$$),
	($$SELECT medpro_jwt_sign(jsonb_build_object('x', repeat('x', 7000)), decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign('{"x":1e9000}', decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign(('{"x":' || repeat('[', 65) || repeat(']', 65) || '}')::jsonb, decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_sign(('{"x":' || repeat('{"y":', 64) || '1' || repeat('}', 64) || '}')::jsonb, decode(repeat('0b', 32), 'hex'))$$),
	($$SELECT medpro_jwt_verify('a.b.c', NULL::bytea)$$),
	($$SELECT medpro_jwt_verify('a.b.c', decode(repeat('0b', 32), 'hex'), NULL)$$),
	($$SELECT medpro_jwt_verify(NULL, NULL::text)$$),
	($$SELECT medpro_jwt_verify('a.b.c', decode(repeat('0b', 32), 'hex'), 'HS256', 'infinity')$$),
	($$SELECT * FROM medpro_jwt_decode('a.b.c', NULL::text)$$),
	($$SELECT * FROM medpro_jwt_decode('a.b.c', 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk', NULL)$$),
	($$SELECT * FROM medpro_jwt_decode('a.b.c', 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk', 'HS256', '-infinity')$$)) v(s);
-- The largest payload that fits (an 8192-byte token, which verifies), and one byte more.
SELECT length(t) AS largest_token, pg_temp.why(t) AS verifies,
       pg_temp.try(format('SELECT medpro_jwt_sign(%L, %s)',
                          jsonb_build_object('exp', 2000000100, 'x', repeat('x', 6059)), :'k32')) AS one_more
  FROM (SELECT medpro_jwt_sign(jsonb_build_object('exp', 2000000100, 'x', repeat('x', 6058)), :k32) AS t) x;

--
-- medpro_jwt_verify raises 28000 "invalid token: <reason>" and nothing more
--
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(%L, %s, %L, %L)', t, :'k32', 'HS256', :now)) AS outcome
  FROM (VALUES ('not a token'),
               (medpro_jwt_sign('{"exp":1999999999}', :k32)),
               (medpro_jwt_sign('{"exp":2000000100}', decode(repeat('0a', 32), 'hex')))) v(t);
SELECT pg_temp.try(format('SELECT medpro_jwt_verify(NULL, %s)', :'k32')) AS null_token;

--
-- Reasons, in the order the checks run
--
-- Structure and size, before any decoding
SELECT t AS token, pg_temp.why(t) AS reason
  FROM (VALUES (''), ('abc'), ('a.b'), ('a.b.c.d'), ('..'), ('...'), ('e30.e30.')) v(t);
SELECT pg_temp.why(repeat('a', 8193)) AS over_8192,
       pg_temp.why(rpad('e30.e30.', 8192, 'A')) AS at_8192,
       pg_temp.why(repeat('a', 1025) || '.e30.') AS header_over_1024,
       pg_temp.why(repeat('a', 1024) || '.e30.') AS header_at_1024;
-- base64url: alphabet, no padding, no whitespace, length, canonical trailing bits
SELECT t AS token, pg_temp.why(t) AS reason
  FROM (VALUES ('e30=.e30.'), ('e30.e30=.'), ('e30.e30.AA=='), ('e3+.e30.'), ('e3/.e30.'),
               ('e3 0.e30.'), (E'e30\n.e30.'), ('e30.e30.A'), ('e30.e30.AAAAA'), ('e31.e30.'),
               ('e30.e31.'), ('e30.e30.AB'), ('e30.e30.AAB'), ('é30.e30.')) v(t);
-- Header: UTF-8, JSON object, no duplicates, nesting, NUL, alg, crit
SELECT h AS header, pg_temp.why(pg_temp.b64(convert_to(h, 'UTF8')) || '.e30.') AS reason
  FROM (VALUES (''), ('[]'), ('"HS256"'), ('null'), ('{'), ('{"alg":"HS256"} x'), ('{"alg":"HS256",}'),
               ('{alg:"HS256"}'), ('{"alg":"HS256"}{}'), ('{"alg":"HS256","alg":"HS256"}'),
               ('{"alg":"HS256","a":{"b":1,"b":2}}'), ('{"alg":"HS256","\u0061lg":"HS256"}'),
               ('{"alg":"HS256","x":"\u0000"}'), ('{"alg":"HS256","\u0000":1}'), ('{"alg":"HS256","x":"\ud800"}'),
               ('{}'), ('{"typ":"JWT"}'), ('{"alg":null}'), ('{"alg":256}'), ('{"alg":["HS256"]}'),
               ('{"alg":"none"}'), ('{"alg":"hs256"}'), ('{"alg":"HS384"}'), ('{"alg":"HS256 "}'),
               ('{"alg":"RS256"}'), ('{"alg":"HS256","crit":["exp"]}'), ('{"alg":"HS256","crit":[]}'),
               ('{"alg":"HS\u0032\u0035\u0036","typ":"JWT"}'), (E'\t{ "alg" : "HS256" }\r\n')) v(h);
SELECT pg_temp.why(pg_temp.b64('\x7b22616c67223a22ff227d'::bytea) || '.e30.') AS latin1_byte,
       pg_temp.why(pg_temp.b64('\x7b22616c67223a2248533235360022207d'::bytea) || '.e30.') AS raw_nul;
-- medpro signs only what it accepts: a payload nested 64 levels deep
-- round-trips; 65 levels are refused by medpro_jwt_sign (above).
SELECT pg_temp.why(medpro_jwt_sign(('{"exp":2000000100,"x":' || repeat('[', 63) || repeat(']', 63) || '}')::jsonb, :k32)) AS signed_depth_64;
-- Nesting: 64 levels are fine, 65 are not (checked before parsing)
SELECT pg_temp.why(pg_temp.b64t('{"alg":"HS256","x":' || repeat('[', 63) || repeat(']', 63) || '}') || '.e30.') AS depth_64,
       pg_temp.why(pg_temp.b64t('{"alg":"HS256","x":' || repeat('[', 64) || repeat(']', 64) || '}') || '.e30.') AS depth_65,
       pg_temp.why(pg_temp.b64t('{"alg":"HS256","x":"' || repeat('[', 100) || '"}') || '.e30.') AS brackets_in_string,
       pg_temp.why(pg_temp.b64t('{"alg":"HS256","x":' || repeat('{"a":', 70) || '1' || repeat('}', 70) || '}') || '.e30.') AS objects_70;
-- typ (RFC 7515 4.1.9, RFC 9068): JWT or at+jwt, as a media type (case-insensitive,
-- "application/" optional); checked after alg, before the signature
SELECT h AS header, pg_temp.why(pg_temp.mk(h, '{"exp":2000000100}')) AS reason
  FROM (VALUES ('{"alg":"HS256","typ":"JWT"}'), ('{"alg":"HS256","typ":"jwt"}'), ('{"alg":"HS256","typ":"at+jwt"}'),
               ('{"alg":"HS256","typ":"AT+JWT"}'), ('{"alg":"HS256","typ":"application/jwt"}'),
               ('{"alg":"HS256","typ":"application/at+jwt"}'), ('{"alg":"HS256","typ":"JOSE"}'),
               ('{"alg":"HS256","typ":"JWT "}'), ('{"alg":"HS256","typ":""}'), ('{"alg":"HS256","typ":"application/"}'),
               ('{"alg":"HS256","typ":"text/jwt"}'), ('{"alg":"HS256","typ":"dpop+jwt"}'), ('{"alg":"HS256","typ":null}'),
               ('{"alg":"HS256","typ":["JWT"]}'), ('{"alg":"HS256","typ":1}'), ('{"alg":"HS512","typ":"JOSE"}')) v(h);
-- crit (RFC 7515 4.1.11): a non-empty array of non-empty names, none of which medpro understands
SELECT h AS header, pg_temp.why(pg_temp.mk(h, '{"exp":2000000100}')) AS reason
  FROM (VALUES ('{"alg":"HS256","crit":["exp"]}'), ('{"alg":"HS256","crit":["b64"],"b64":false}'),
               ('{"alg":"HS256","crit":[]}'), ('{"alg":"HS256","crit":"exp"}'), ('{"alg":"HS256","crit":[1]}'),
               ('{"alg":"HS256","crit":[""]}'), ('{"alg":"HS256","crit":["exp",null]}'), ('{"alg":"HS256","crit":null}'),
               ('{"alg":"HS256","crit":{}}'), ('{"alg":"HS256","typ":"JOSE","crit":[]}'),
               ('{"alg":"HS256","x":{"crit":["exp"],"typ":"JOSE"}}')) v(h);
-- Signature: wrong key, wrong algorithm's key, tampering, truncation
SELECT pg_temp.why(medpro_jwt_sign('{"exp":2000000100}', decode(repeat('0a', 32), 'hex'))) AS wrong_key,
       pg_temp.why(medpro_jwt_sign('{"exp":2000000100}', :k32) || 'A') AS sig_longer,
       pg_temp.why(left(medpro_jwt_sign('{"exp":2000000100}', :k32), -4)) AS sig_shorter,
       pg_temp.why(regexp_replace(medpro_jwt_sign('{"exp":2000000100}', :k32), '\.[^.]*$', '.')) AS sig_empty,
       pg_temp.why(regexp_replace(medpro_jwt_sign('{"exp":2000000100}', :k32), '\.[^.]*$', '.' || pg_temp.b64(decode(repeat('00', 32), 'hex')))) AS sig_zero,
       pg_temp.why(split_part(medpro_jwt_sign('{"exp":2000000100}', :k32), '.', 1) || '.' ||
                   pg_temp.b64t('{"exp":2000000200}') || '.' ||
                   split_part(medpro_jwt_sign('{"exp":2000000100}', :k32), '.', 3)) AS payload_swapped,
       pg_temp.why(medpro_jwt_sign('{"exp":2000000100}', :k64, 'HS512'), :k64, 'HS256') AS alg_pinned;
-- Flipping any one character of the signature is detected (all 43 positions).
SELECT count(*) FILTER (WHERE pg_temp.why(overlay(t placing CASE substr(t, i, 1) WHEN 'A' THEN 'B' ELSE 'A' END
                                                  from i for 1)) = 'signature mismatch') AS flips_detected,
       count(*) AS positions
  FROM (SELECT medpro_jwt_sign('{"exp":2000000100}', :k32) AS t) x,
       generate_series(length(x.t) - 42, length(x.t)) i;
-- Payload, only once the signature is valid: object, duplicates at any depth, NUL, numbers
SELECT p AS payload, pg_temp.why(pg_temp.mkp(p)) AS reason
  FROM (VALUES (''), ('[]'), ('"Payload"'), ('It''s a dangerous business, Frodo'), ('null'),
               ('{"exp":2000000100'), ('{"exp":2000000100,"exp":2000000100}'),
               ('{"exp":2000000100,"a":{"b":1,"b":2}}'), ('{"exp":2000000100,"a":[{"x":1},{"y":1,"y":1}]}'),
               ('{"exp":2000000100,"a":1,"\u0061":2}'), ('{"exp":2000000100,"a":{"b":1},"c":{"b":1}}'),
               ('{"exp":2000000100,"x":"a\u0000b"}'), ('{"exp":2000000100,"x":1e100000}'),
               ('{"exp":2000000100,"x":1e-100000}'), ('{"exp":2000000100,"x":0e100000}'),
               ('{"exp":2000000100,"x":-1e1000}'), ('{"exp":2000000100,"x":[1e1000, 1.5e-1000]}'),
               ('{"exp":2000000100,"x":' || repeat('[', 63) || repeat(']', 63) || '}'),
               ('{"exp":2000000100,"x":' || repeat('[', 64) || repeat(']', 64) || '}')) v(p);
SELECT pg_temp.why(pg_temp.mkb(convert_to('{"alg":"HS256"}', 'UTF8'), '\x7b22657870223a323030303030303130302c2278223a22ff227d')) AS payload_latin1,
       pg_temp.why(pg_temp.mkb(convert_to('{"alg":"HS256"}', 'UTF8'), '\x7b22657870223a323030303030303130302c2278223a22c3a922007d')) AS payload_raw_nul;
-- Numbers are stored exactly, as jsonb stores them.
SELECT payload->'x' = '1e1000'::jsonb AS big_exact, length(payload->>'x') AS big_digits, payload->'y' AS small
  FROM medpro_jwt_decode(pg_temp.mkp('{"exp":2000000100,"x":1e1000,"y":-0.5e-3}'), :k32, 'HS256', :now);

-- exp, nbf, iat: required / optional, numbers, valid times
SELECT p AS payload, pg_temp.why(pg_temp.mkp(p)) AS reason
  FROM (VALUES ('{}'), ('{"sub":"x"}'), ('{"EXP":2000000100}'), ('{"x":{"exp":2000000100}}'),
               ('{"exp":"2000000100"}'), ('{"exp":null}'), ('{"exp":true}'), ('{"exp":{}}'), ('{"exp":[2000000100]}'),
               ('{"exp":-1}'), ('{"exp":-0.000001}'), ('{"exp":253402300800}'), ('{"exp":253402300799.0000001}'),
               ('{"exp":1e20}'), ('{"exp":1e100000000}'), ('{"exp":253402300799}'), ('{"exp":0}'), ('{"exp":-0}'),
               ('{"exp":2e9}'), ('{"exp":2.0000001e9}'), ('{"exp":20000001000000e-4}'),
               ('{"exp":2000000100,"nbf":"x"}'), ('{"exp":2000000100,"nbf":null}'), ('{"exp":2000000100,"nbf":-5}'),
               ('{"exp":2000000100,"nbf":1e13}'), ('{"exp":2000000100,"iat":false}'), ('{"exp":2000000100,"iat":[]}'),
               ('{"exp":2000000100,"iat":253402300800}'), ('{"exp":"x","nbf":"y","iat":"z"}'),
               ('{"exp":1,"nbf":"y"}'), ('{"exp":2000000100,"nbf":1999999000,"iat":1999999000}')) v(p);

-- Time claims that would overflow or wrap are refused, never wrapped or saturated;
-- JSON has no NaN or Infinity, so those are not JSON at all.
SELECT p AS payload, pg_temp.why(pg_temp.mkp(p)) AS reason
  FROM (VALUES ('{"exp":NaN}'), ('{"exp":Infinity}'), ('{"exp":-Infinity}'), ('{"exp":1.7976931348623157e309}'),
               ('{"exp":1e308}'), ('{"exp":9223372036854775807}'), ('{"exp":9223372036854775808}'),
               ('{"exp":18446744073709551617}'), ('{"exp":-9223372036854775808}'), ('{"exp":9223372036854.775807}'),
               ('{"exp":2000000100,"nbf":18446744073709551616}'), ('{"exp":2000000100,"iat":1e19}'),
               ('{"exp":2000000100,"iat":-1e-7}'), ('{"exp":0.1e11}'), ('{"exp":1e-99999}'),
               ('{"exp":2000000100,"nbf":0x10}'), ('{"exp":+2000000100}'), ('{"exp":02000000100}')) v(p);
-- Claims come back exactly as written, whatever the number form.
SELECT medpro_jwt_verify(pg_temp.mkp('{"exp":2000000100,"a":-0,"b":123456789012345678,"c":1234567890123456789,"d":-5,"e":1.50,"f":2E3,"g":-0.0}'),
                         :k32, 'HS256', :now)
     = '{"exp":2000000100,"a":-0,"b":123456789012345678,"c":1234567890123456789,"d":-5,"e":1.50,"f":2E3,"g":-0.0}'::jsonb AS numbers_exact,
       medpro_jwt_verify(pg_temp.mkp('{"exp":2000000100,"s":"\u00e9\ud83c\udf89\n\/","k":{"\u0061":[1,{"b":null}]}}'),
                         :k32, 'HS256', :now)
     = '{"exp":2000000100,"s":"\u00e9\ud83c\udf89\n\/","k":{"\u0061":[1,{"b":null}]}}'::jsonb AS strings_exact;
-- Time: leeway (default 30 s), boundaries to the microsecond, fractional claims
SHOW medpro.jwt_leeway;
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000000}'), at => at) AS exp_2000000000
  FROM (VALUES ('2033-05-18 03:33:49.999999+00'::timestamptz), ('2033-05-18 03:33:50+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000100,"nbf":2000000000}'), at => at) AS nbf_2000000000
  FROM (VALUES ('2033-05-18 03:32:49.999999+00'::timestamptz), ('2033-05-18 03:32:50+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000100,"iat":2000000000}'), at => at) AS iat_2000000000
  FROM (VALUES ('2033-05-18 03:32:49.999999+00'::timestamptz), ('2033-05-18 03:32:50+00')) v(at);
SET medpro.jwt_leeway = 0;
SHOW medpro.jwt_leeway;
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000000}'), at => at) AS exp_2000000000
  FROM (VALUES ('2033-05-18 03:33:19.999999+00'::timestamptz), ('2033-05-18 03:33:20+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000000.5}'), at => at) AS exp_2000000000_5
  FROM (VALUES ('2033-05-18 03:33:20.499999+00'::timestamptz), ('2033-05-18 03:33:20.5+00')) v(at);
-- The jsonb built from the parser's events is the one jsonb_in builds, to the text
-- (numeric scale included): every number form, escapes, nesting, key order.
SELECT count(*) FILTER (WHERE medpro_jwt_verify(pg_temp.mkp(p), :k32, 'HS256', :now)::text = p::jsonb::text) AS same_text,
       count(*) AS payloads
  FROM (VALUES ('{"exp":2000000100,"n":[0,-0,1.50,1e3,1E+3,-0.0,0.000001,1.5e-7,100,999999999999999999,1000000000000000000,-999999999999999999,-9223372036854775808,123456789012345678901234567890.5]}'),
               ('{"exp":2000000100,"s":["","\"","\\","\/","\b\f\n\r\t","\u0001\u001f","é€🎉","\u00e9\u20ac\ud83c\udf89"]}'),
               ('{"exp":2000000100,"zz":1,"a":2,"bb":3,"b":4,"":5,"aa":{"y":[],"x":{},"w":[[]],"v":[{}]}}'),
               ('{"exp":2000000100,"t":true,"f":false,"z":null,"a":[true,false,null,"x",1,{"k":[1,[2,[3]]]}]}'),
               ('{"exp":2000000100,"\u006b\u0065\u0079":"v","k\u00e9y":"\u0041x"}'),
               (E' {"exp" : 2000000100 ,\r\n "a" :\t[ 1 , 2 ] } ')) v(p);
-- A float exp such as 1700000000.9 is exact: valid through 22:13:20.899999, expired from .9.
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":1700000000.9}'), at => at) AS exp_1700000000_9
  FROM (VALUES ('2023-11-14 22:13:20.899999+00'::timestamptz), ('2023-11-14 22:13:20.9+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000000.0000001}'), at => at) AS exp_2000000000_0000001
  FROM (VALUES ('2033-05-18 03:33:20+00'::timestamptz), ('2033-05-18 03:33:20.000001+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000100,"nbf":2000000000.25}'), at => at) AS nbf_2000000000_25
  FROM (VALUES ('2033-05-18 03:33:20.249999+00'::timestamptz), ('2033-05-18 03:33:20.25+00')) v(at);
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":2000000100,"iat":2000000000.000001}'), at => at) AS iat_2000000000_000001
  FROM (VALUES ('2033-05-18 03:33:20+00'::timestamptz), ('2033-05-18 03:33:20.000001+00')) v(at);
SET medpro.jwt_leeway = '2min';
SHOW medpro.jwt_leeway;
SELECT pg_temp.why(pg_temp.mkp('{"exp":1999999881}')) AS exp_119s_ago,
       pg_temp.why(pg_temp.mkp('{"exp":1999999880}')) AS exp_120s_ago,
       pg_temp.why(pg_temp.mkp('{"exp":2000000100,"nbf":2000000120}')) AS nbf_in_120s,
       pg_temp.why(pg_temp.mkp('{"exp":2000000100,"nbf":2000000121}')) AS nbf_in_121s,
       pg_temp.why(pg_temp.mkp('{"exp":2000000200,"iat":2000000120}')) AS iat_in_120s,
       pg_temp.why(pg_temp.mkp('{"exp":2000000200,"iat":2000000121}')) AS iat_in_121s;
RESET medpro.jwt_leeway;
-- The order of the time checks: expired first, then nbf, then iat.
SELECT pg_temp.why(pg_temp.mkp('{"exp":1,"nbf":3000000000,"iat":3000000000}')) AS all_three,
       pg_temp.why(pg_temp.mkp('{"exp":3000000000,"nbf":3000000000,"iat":3000000000}')) AS nbf_and_iat;
-- "at" at the ends of timestamptz's range: the time arithmetic does not
-- overflow (the last instant of 294276 once wrapped around and revived a
-- token that expired in 1970).
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":1}'), at => at) AS exp_1970,
       pg_temp.why(pg_temp.mkp('{"exp":253402300799,"nbf":1,"iat":1}'), at => at) AS exp_9999
  FROM (VALUES ('294276-12-31 23:59:59.999999+00'::timestamptz),
               ('4713-11-24 00:00:00+00 BC')) v(at);
SET medpro.jwt_leeway = '1h';
SELECT at, pg_temp.why(pg_temp.mkp('{"exp":1}'), at => at) AS exp_1970_leeway_1h
  FROM (VALUES ('294276-12-31 23:59:59.999999+00'::timestamptz)) v(at);
RESET medpro.jwt_leeway;
-- Real clock: far future verifies, far past is expired; "at" in the past revives a token.
SELECT medpro_jwt_verify(pg_temp.mkp('{"exp":4102444800}'), :k32) AS far_future,
       pg_temp.why(pg_temp.mkp('{"exp":1000000000}'), at => NULL) AS far_past,
       pg_temp.why(pg_temp.mkp('{"exp":1000000000}'), at => '2001-09-09 01:46:00+00') AS at_in_the_past;
-- The clock is read per call, not at transaction or statement start: a
-- token that expires 5 ms after the statement started, checked 50 ms later
-- within the same statement, has expired.
CREATE FUNCTION pg_temp.clock_test() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	t text := pg_temp.mkp(format('{"exp":%s}', extract(epoch FROM statement_timestamp()) + 0.005));
BEGIN
	PERFORM pg_sleep(0.05);
	RETURN pg_temp.why(t, at => NULL);
END
$$;
SET medpro.jwt_leeway = 0;
BEGIN;
SELECT pg_temp.clock_test() AS call_clock;
ROLLBACK;
RESET medpro.jwt_leeway;

--
-- The per-backend cache of keyed HMAC contexts (8 entries): more keys than
-- entries, in turns, each token verifies under its own key only; the same
-- key bytes under two algorithms are two entries.
--
SELECT count(*) FILTER (WHERE pg_temp.why(t, k) = 'valid') AS own_key_valid,
       count(*) FILTER (WHERE pg_temp.why(t, k2) = 'signature mismatch') AS next_key_mismatch,
       count(*) AS checks
  FROM (SELECT i, decode(repeat(lpad(to_hex(i % 20), 2, '0'), 64), 'hex') AS k,
               decode(repeat(lpad(to_hex((i + 1) % 20), 2, '0'), 64), 'hex') AS k2,
               medpro_jwt_sign('{"exp":2000000100}', decode(repeat(lpad(to_hex(i % 20), 2, '0'), 64), 'hex'),
                               CASE WHEN i % 3 = 0 THEN 'HS512' ELSE 'HS256' END) AS t
          FROM generate_series(0, 59) i) x
 WHERE i % 3 <> 0;
SELECT pg_temp.why(medpro_jwt_sign('{"exp":2000000100}', :k64, 'HS512'), :k64, 'HS512') AS hs512,
       pg_temp.why(medpro_jwt_sign('{"exp":2000000100}', :k64, 'HS384'), :k64, 'HS384') AS hs384_same_key,
       pg_temp.why(pg_temp.mk('{"alg":"HS512"}', '{"exp":2000000100}', :k64, 'HS384'), :k64, 'HS512') AS hs384_mac_as_hs512;

--
-- medpro_jwt_decode: one row per call, never an error for a bad token
--
SELECT * FROM medpro_jwt_decode(pg_temp.mkp('{"sub":"a","exp":2000000100}'), :k32, 'HS256', :now);
SELECT * FROM medpro_jwt_decode(pg_temp.mkp('{"sub":"a","exp":1999999000}'), :k32, 'HS256', :now);
SELECT * FROM medpro_jwt_decode(pg_temp.mkp('{"sub":"a","exp":2000000100}'), decode(repeat('0a', 32), 'hex'), 'HS256', :now);
SELECT * FROM medpro_jwt_decode(pg_temp.mkp('{"sub":"a"}'), :k32, 'HS256', :now);
SELECT * FROM medpro_jwt_decode(pg_temp.mkp('[1,2]'), :k32, 'HS256', :now);
SELECT * FROM medpro_jwt_decode(pg_temp.mk('{"alg":"HS384"}', '{"exp":2000000100}'), :k32, 'HS256', :now);
SELECT * FROM medpro_jwt_decode('nonsense', :k32);
SELECT * FROM medpro_jwt_decode(NULL, :k32);
SELECT * FROM medpro_jwt_decode(repeat('x', 100000), :k32);
-- In the select list, and over many rows.
SELECT medpro_jwt_decode(medpro_jwt_sign('{"exp":2000000100}', :k32), :k32, 'HS256', :now);
SET medpro.jwt_leeway = 0;
SELECT i, d.valid, d.reason
  FROM generate_series(1, 4) i,
       medpro_jwt_decode(medpro_jwt_sign(jsonb_build_object('i', i, 'exp', 1999999998 + i), :k32), :k32, 'HS256', :now) d;
RESET medpro.jwt_leeway;
