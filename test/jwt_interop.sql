-- pgTAP: medpro's JWTs against an independent implementation, Python's
-- standard library (hmac, hashlib, base64, json) in scripts/jwt_interop.py,
-- run through psql backticks (pg_prove runs from the top of the tree).
--   1. tokens signed by medpro_jwt_sign verify in Python;
--   2. tokens made by Python verify in medpro, and byte for byte equal
--      medpro's own for the same compact JSON;
--   3. tampered tokens fail in both;
--   4. Python confirms the signatures of the HS* public vectors, including
--      the pgjwt fixtures whose 6-byte key medpro refuses.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;

SELECT plan(21);

\set py 'python3 scripts/jwt_interop.py'
\set k256 '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'
\set k384 '0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c'
\set k512 '0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d'
\set other '0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a'
\set claims '{"sub":"u-1","role":"doctor","exp":4102444800,"iat":1700000000}'
\set fancy '{"name":"Zoë \\"quoted\\" \\\\ / 🎉","ctl":"\\u0001\\t\\n","exp":4102444800,"nested":{"a":[1,2.50,null,true,{}]},"":""}'

--
-- 1. medpro signs, Python verifies
--
SELECT medpro_jwt_sign(:'claims', decode(:'k256', 'hex'), 'HS256', 'kid-1') AS t256,
       medpro_jwt_sign(:'claims', decode(:'k384', 'hex'), 'HS384') AS t384,
       medpro_jwt_sign(:'claims', decode(:'k512', 'hex'), 'HS512') AS t512,
       medpro_jwt_sign(:'fancy', decode(:'k256', 'hex')) AS tfancy \gset
\set py256 `:py verify :'t256' :'k256' HS256`
\set py384 `:py verify :'t384' :'k384' HS384`
\set py512 `:py verify :'t512' :'k512' HS512`
\set pyfancy `:py verify :'tfancy' :'k256' HS256`
SELECT is((:'py256')::jsonb, (:'claims')::jsonb, 'an HS256 token from medpro (with kid) verifies in Python, same claims');
SELECT is((:'py384')::jsonb, (:'claims')::jsonb, 'an HS384 token from medpro verifies in Python, same claims');
SELECT is((:'py512')::jsonb, (:'claims')::jsonb, 'an HS512 token from medpro verifies in Python, same claims');
SELECT is((:'pyfancy')::jsonb, (:'fancy')::jsonb, 'escapes, non-ASCII and nesting survive the trip to Python');

-- Tampered: another payload under medpro's signature; the wrong key.
SELECT split_part(:'t256', '.', 1) || '.' ||
       split_part(medpro_jwt_sign('{"sub":"admin","exp":4102444800}', decode(:'other', 'hex')), '.', 2) || '.' ||
       split_part(:'t256', '.', 3) AS tampered \gset
\set pytampered `:py verify :'tampered' :'k256' HS256`
\set pywrongkey `:py verify :'t256' :'other' HS256`
SELECT is(:'pytampered'::text, '{"invalid":"signature mismatch"}', 'Python rejects a medpro token whose payload was swapped');
SELECT is(:'pywrongkey'::text, '{"invalid":"signature mismatch"}', 'Python rejects a medpro token under another key');

--
-- 2. Python signs, medpro verifies
--
\set hdr256 '{"typ": "JWT",\t "alg": "HS256", "kid": "py"}'
\set body '{"sub": "py-user", "exp": 4102444800, "scopes": ["a", "b"], "n": 1.25}'
\set pt256 `:py sign HS256 :'k256' :'hdr256' :'body'`
\set pt384 `:py sign HS384 :'k384' '{"alg":"HS384"}' :'body'`
\set pt512 `:py sign HS512 :'k512' '{"alg":"HS512"}' :'body'`
SELECT is(medpro_jwt_verify(:'pt256', decode(:'k256', 'hex')), (:'body')::jsonb,
          'an HS256 token from Python (whitespace, other member order) verifies in medpro');
SELECT is(medpro_jwt_verify(:'pt384', decode(:'k384', 'hex'), 'HS384'), (:'body')::jsonb,
          'an HS384 token from Python verifies in medpro');
SELECT is(medpro_jwt_verify(:'pt512', decode(:'k512', 'hex'), 'HS512'), (:'body')::jsonb,
          'an HS512 token from Python verifies in medpro');

-- The same compact JSON gives the same token, byte for byte (jsonb orders
-- keys by length, then bytes: exp, sub).
\set same256 `:py sign HS256 :'k256' '{"alg":"HS256","typ":"JWT"}' '{"exp":4102444800,"sub":"py"}'`
\set hdr384 '{"alg":"HS384","typ":"JWT","kid":"k\\"1"}'
\set same384 `:py sign HS384 :'k384' :'hdr384' '{"a":[1,{"b":null}],"exp":4102444800}'`
\set same512 `:py sign HS512 :'k512' '{"alg":"HS512","typ":"JWT"}' '{"é":"ü","exp":4102444800}'`
SELECT is(medpro_jwt_sign('{"sub":"py","exp":4102444800}', decode(:'k256', 'hex')), :'same256',
          'medpro and Python make the same HS256 token from the same compact JSON');
SELECT is(medpro_jwt_sign('{"exp":4102444800,"a":[1,{"b":null}]}', decode(:'k384', 'hex'), 'HS384', 'k"1'), :'same384',
          'medpro and Python make the same HS384 token (with an escaped kid)');
SELECT is(medpro_jwt_sign('{"exp":4102444800,"é":"ü"}', decode(:'k512', 'hex'), 'HS512'), :'same512',
          'medpro and Python make the same HS512 token (non-ASCII member)');

-- Tampered Python tokens fail in medpro.
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, decode(%L, ''hex''))',
                        split_part(:'pt256', '.', 1) || '.' ||
                        translate(split_part(:'pt256', '.', 2), 'AQgw', 'QgwA') || '.' ||
                        split_part(:'pt256', '.', 3), :'k256'),
                 '28000', 'invalid token: signature mismatch', 'medpro rejects a Python token with an altered payload');
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, decode(%L, ''hex''))', :'pt256', :'other'),
                 '28000', 'invalid token: signature mismatch', 'medpro rejects a Python token under another key');
\set ptnone `:py sign HS256 :'k256' '{"alg":"none"}' :'body'`
SELECT throws_ok(format('SELECT medpro_jwt_verify(%L, decode(%L, ''hex''))', :'ptnone', :'k256'),
                 '28000', 'invalid token: algorithm not allowed', 'medpro rejects a Python token whose header says none');
-- Python accepts duplicate members (the last one wins); medpro does not.
\set ptdup `:py sign HS256 :'k256' '{"alg":"HS256"}' '{"sub":"user","exp":4102444800,"sub":"admin"}'`
\set pydup `:py verify :'ptdup' :'k256' HS256`
SELECT is(:'pydup' || ' / ' || (SELECT reason FROM medpro_jwt_decode(:'ptdup', decode(:'k256', 'hex'))),
          '{"sub":"admin","exp":4102444800} / duplicate member in payload',
          'a payload with a duplicate member: Python takes the last, medpro rejects it');

--
-- 4. Python confirms the HS* vectors' signatures
--
\set v1 `:py vector 'pgjwt fixture HS256'`
\set v2 `:py vector 'pgjwt fixture HS384'`
\set v3 `:py vector 'pgjwt fixture HS512'`
\set v4 `:py vector 'RFC 7520 4.4 HS256'`
\set v5 `:py vector 'RFC 7515 A.1 HS256'`
SELECT is(:'v1'::text, 'signature valid', 'pgjwt fixture HS256: its signature under "secret" is valid (Python)');
SELECT is(:'v2'::text, 'signature valid', 'pgjwt fixture HS384: its signature under "secret" is valid (Python)');
SELECT is(:'v3'::text, 'signature valid', 'pgjwt fixture HS512: its signature under "secret" is valid (Python)');
SELECT is(:'v4'::text, 'signature valid', 'RFC 7520 4.4: its signature is valid (Python), so medpro rejects it for its payload alone');
SELECT is(:'v5'::text, 'signature valid', 'RFC 7515 A.1: its signature is valid (Python)');

SELECT * FROM finish();
ROLLBACK;
