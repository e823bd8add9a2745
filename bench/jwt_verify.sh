#!/usr/bin/env bash
# bench/jwt_verify.sh: HS256 verification cost, medpro against a lean
# pgcrypto-based PL/pgSQL verifier, side by side in one run.
#
# Each side verifies N distinct typical tokens (about 230 bytes) in a single
# query; the script prints microseconds per call and the ratio.  Uses a
# throwaway cluster (scripts/cluster.sh); N defaults to 100000.
set -euo pipefail
N=${1:-100000}
. "$(dirname "$0")/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
CREATE EXTENSION pgcrypto;

-- The baseline: split on '.', pgcrypto's hmac(), a base64url compare, an exp check.
CREATE FUNCTION lean_verify(token text, secret bytea) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	parts text[] := string_to_array(token, '.');
	sig text;
	payload jsonb;
	p text;
BEGIN
	IF array_length(parts, 1) <> 3 THEN
		RAISE EXCEPTION 'invalid token';
	END IF;
	sig := rtrim(translate(encode(hmac(convert_to(parts[1] || '.' || parts[2], 'UTF8'), secret, 'sha256'), 'base64'), E'+/\n', '-_'), '=');
	IF sig <> parts[3] THEN
		RAISE EXCEPTION 'invalid token: signature mismatch';
	END IF;
	p := translate(parts[2], '-_', '+/');
	payload := convert_from(decode(rpad(p, (length(p) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb;
	IF (payload ->> 'exp')::numeric < extract(epoch FROM clock_timestamp()) THEN
		RAISE EXCEPTION 'invalid token: expired';
	END IF;
	RETURN payload;
END
$$;

CREATE TABLE tokens AS
SELECT medpro_jwt_sign(jsonb_build_object(
		'iss', 'medpro', 'sub', gen_random_uuid(), 'clinic_id', gen_random_uuid(),
		'role', 'doctor', 'iat', 1790000000, 'exp', 4102444800, 'ver', 1),
		'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea) AS t
  FROM generate_series(1, :n);
ANALYZE tokens;
SELECT avg(length(t))::int AS "token bytes" FROM tokens;

-- Warm both paths once.
SELECT count(medpro_jwt_verify(t, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea)) FROM (SELECT t FROM tokens LIMIT 1000) s \g /dev/null
SELECT count(lean_verify(t, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea)) FROM (SELECT t FROM tokens LIMIT 1000) s \g /dev/null

CREATE TEMP TABLE timing (what text, us float8);
DO $$
DECLARE
	k bytea := '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
	t0 timestamptz;
	n bigint;
	base float8;
BEGIN
	SELECT count(*) INTO n FROM tokens;
	t0 := clock_timestamp();
	PERFORM count(t) FROM tokens;
	base := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
	t0 := clock_timestamp();
	PERFORM count(medpro_jwt_verify(t, k)) FROM tokens;
	INSERT INTO timing VALUES ('medpro_jwt_verify', extract(epoch FROM clock_timestamp() - t0) * 1e6 / n - base);
	t0 := clock_timestamp();
	PERFORM count(lean_verify(t, k)) FROM tokens;
	INSERT INTO timing VALUES ('lean PL/pgSQL + pgcrypto', extract(epoch FROM clock_timestamp() - t0) * 1e6 / n - base);
END $$;
\pset footer off
SELECT what AS "HS256 verify", round(us::numeric, 2) AS "us per call" FROM timing ORDER BY us;
SELECT round(((SELECT us FROM timing WHERE what LIKE 'lean%') /
			  (SELECT us FROM timing WHERE what = 'medpro_jwt_verify'))::numeric, 1) AS "ratio (baseline / medpro)";
SQL
