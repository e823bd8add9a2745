#!/usr/bin/env bash
# bench/jwt.sh: JWT verification cost, medpro against its baselines, side
# by side in one run, on one core.
#
#   bench/jwt.sh [N] [N_ASYM] [N_CACHED]
#
# 1. HS256: medpro_jwt_verify on N distinct typical tokens (about 230 bytes;
#    default N = 1000000) in one query, against the same tokens through a
#    lean PL/pgSQL verifier (split on '.', pgcrypto's hmac(), a base64url
#    compare, an exp check: pgjwt's approach without its extra work).
# 2. RS256, ES256, EdDSA: medpro_jwt_verify cold (N_ASYM distinct tokens,
#    default 5000) and cached (one token N_CACHED times, default 200000),
#    against
#    `openssl speed` for the same algorithm.  An algorithm medpro does not
#    support yet is skipped with a message.
#
# Prints microseconds per call and the ratios.  The whole run (server
# included) is pinned to CPU $MEDPRO_BENCH_CPU (default 1) with taskset.
# Times are the backend's CPU time (/proc/self/schedstat), which other
# processes sharing the core do not inflate, and for HS256 also the wall
# clock.  openssl speed reports CPU-time rates as well.  schedstat is
# updated at scheduler ticks, so each timed query runs long enough (0.1 s
# and more) for that not to matter.
# Uses a throwaway cluster (bench/lib.sh).
set -euo pipefail
if [ -z "${MEDPRO_BENCH_PINNED:-}" ]; then
	exec env MEDPRO_BENCH_PINNED=1 taskset -c "${MEDPRO_BENCH_CPU:-1}" bash "$0" "$@"
fi
N=${1:-1000000}
N_ASYM=${2:-5000}
N_CACHED=${3:-200000}
. "$(dirname "$0")/lib.sh"
echo "pinned to CPU $(taskset -pc $$ | sed 's/.*: //')"

KEYDIR=$(mktemp -d /tmp/medpro-bench-keys-XXXXXX)
trap 'rm -rf "$KEYDIR"; scripts/cluster.sh destroy' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEYDIR/rs.key" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEYDIR/es.key" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$KEYDIR/ed.key" 2>/dev/null
for k in rs es ed; do openssl pkey -in "$KEYDIR/$k.key" -pubout -out "$KEYDIR/$k.pub" 2>/dev/null; done

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE EXTENSION medpro CASCADE" -c "CREATE EXTENSION pgcrypto" 2>&1 | grep -v NOTICE || true

echo "== HS256: $N distinct tokens, one query each side"
psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -d postgres <<'SQL'
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

-- Typical access tokens: issuer, subject, role, iat, exp, version.
CREATE TABLE tokens AS
SELECT medpro_jwt_sign(jsonb_build_object(
		'iss', 'medpro', 'sub', gen_random_uuid(), 'role', 'doctor',
		'iat', 1790000000 + i % 1000, 'exp', 4102444800),
		'\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea) AS t
  FROM generate_series(1, :n) i;
VACUUM ANALYZE tokens;
SELECT round(avg(length(t))) AS "token bytes", count(*) AS tokens FROM tokens;

-- Both verify every token correctly (checked, not timed).
SELECT count(*) FILTER (WHERE medpro_jwt_verify(t, k) = lean_verify(t, k)) AS "agree (of 1000)"
  FROM (SELECT t FROM tokens LIMIT 1000) s,
       (SELECT '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea AS k) kk;

-- CPU time of this backend in ns (Linux schedstat): unlike the wall clock,
-- it does not count time other processes took on the same core.
CREATE FUNCTION cpu_ns() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;

CREATE TEMP TABLE timing (what text, wall float8, cpu float8);
DO $$
DECLARE
	k bytea := '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
	t0 timestamptz;
	c0 bigint;
	n bigint;
	bw float8;
	bc float8;
BEGIN
	SELECT count(*) INTO n FROM tokens;
	-- the scan and aggregate alone, subtracted from both
	c0 := cpu_ns(); t0 := clock_timestamp();
	PERFORM count(t) FROM tokens;
	bw := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
	bc := (cpu_ns() - c0) / 1e3 / n;
	INSERT INTO timing VALUES ('(scan + count, subtracted)', bw, bc);
	c0 := cpu_ns(); t0 := clock_timestamp();
	PERFORM count(medpro_jwt_verify(t, k)) FROM tokens;
	INSERT INTO timing VALUES ('medpro_jwt_verify',
		extract(epoch FROM clock_timestamp() - t0) * 1e6 / n - bw, (cpu_ns() - c0) / 1e3 / n - bc);
	c0 := cpu_ns(); t0 := clock_timestamp();
	PERFORM count(lean_verify(t, k)) FROM tokens;
	INSERT INTO timing VALUES ('lean PL/pgSQL + pgcrypto',
		extract(epoch FROM clock_timestamp() - t0) * 1e6 / n - bw, (cpu_ns() - c0) / 1e3 / n - bc);
END $$;
\pset footer off
SELECT what AS "HS256 verify", round(cpu::numeric, 2) AS "us per call (CPU)",
       round(wall::numeric, 2) AS "us per call (wall)" FROM timing ORDER BY cpu DESC;
SELECT round(((SELECT cpu FROM timing WHERE what LIKE 'lean%') /
			  (SELECT cpu FROM timing WHERE what = 'medpro_jwt_verify'))::numeric, 1) AS "ratio baseline / medpro (CPU)",
       round(((SELECT wall FROM timing WHERE what LIKE 'lean%') /
			  (SELECT wall FROM timing WHERE what = 'medpro_jwt_verify'))::numeric, 1) AS "ratio (wall)";
SQL

# openssl speed: verifications per second for one algorithm (last column of
# its result line).
openssl_verify_us() {
	local what=$1 pattern=$2 out
	out=$(openssl speed -seconds 2 "$what" 2>/dev/null | grep -E "$pattern" | tail -n 1)
	awk -v l="$out" 'BEGIN { n = split(l, f, " "); if (n > 0 && f[n] + 0 > 0) printf "%.2f", 1e6 / f[n]; else print "" }'
}

echo "== asymmetric: $N_ASYM distinct tokens (cold), one token $N_CACHED times (cached)"
for spec in "RS256 rs rsa2048 ^rsa\\s+2048" "ES256 es ecdsap256 ^\\s*256\\s+bits\\s+ecdsa" "EdDSA ed ed25519 Ed25519\\)"; do
	set -- $spec
	alg=$1 k=$2 speed=$3 pattern=$4
	priv=$(cat "$KEYDIR/$k.key")
	pub=$(cat "$KEYDIR/$k.pub")
	if ! err=$(psql -X -q -At -v ON_ERROR_STOP=1 -d postgres -v priv="$priv" -v alg="$alg" 2>&1 >/dev/null <<'SQL'
SELECT medpro_jwt_sign('{"exp":4102444800}', :'priv'::text, :'alg') IS NOT NULL;
SQL
	); then
		echo "$alg: skipped, medpro cannot sign it yet ($(echo "$err" | sed -n 's/^ERROR: *//p' | head -n 1))"
		continue
	fi
	res=$(psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 -d postgres -v n="$N_ASYM" -v nc="$N_CACHED" -v priv="$priv" -v pub="$pub" -v alg="$alg" <<'SQL'
CREATE TEMP TABLE atok AS
SELECT medpro_jwt_sign(jsonb_build_object('iss', 'medpro', 'sub', gen_random_uuid(), 'role', 'doctor',
		'iat', 1790000000, 'exp', 4102444800, 'ver', 1), :'priv'::text, :'alg') AS t
  FROM generate_series(1, :n);
CREATE TEMP TABLE one AS SELECT t FROM atok LIMIT 1;
CREATE TEMP TABLE rep AS SELECT (SELECT t FROM one) AS t FROM generate_series(1, :nc);
CREATE TEMP TABLE timing (what text, us float8);
SELECT set_config('bench.pub', :'pub', false), set_config('bench.alg', :'alg', false) \g /dev/null
DO $$
DECLARE
	pub text := current_setting('bench.pub');
	alg text := current_setting('bench.alg');
	c0 bigint;
	n bigint;
BEGIN
	SELECT count(*) INTO n FROM atok;
	c0 := cpu_ns();
	PERFORM count(medpro_jwt_verify(t, pub, alg)) FROM atok;
	INSERT INTO timing VALUES ('cold', (cpu_ns() - c0) / 1e3 / n);
	PERFORM count(medpro_jwt_verify(t, pub, alg)) FROM one;
	SELECT count(*) INTO n FROM rep;
	c0 := cpu_ns();
	PERFORM count(medpro_jwt_verify(t, pub, alg)) FROM rep;
	INSERT INTO timing VALUES ('cached', (cpu_ns() - c0) / 1e3 / n);
END $$;
SELECT round((SELECT us FROM timing WHERE what = 'cold')::numeric, 2),
       round((SELECT us FROM timing WHERE what = 'cached')::numeric, 2);
SQL
	)
	set -- $res
	cold=$1 cached=$2
	ossl=$(openssl_verify_us "$speed" "$pattern")
	if [ -n "$ossl" ]; then
		ratio=$(awk -v a="$cold" -v b="$ossl" 'BEGIN { printf "%.2f", a / b }')
		echo "$alg: cold $cold us/call, cached $cached us/call (CPU); openssl speed verify $ossl us: cold / openssl $ratio"
	else
		echo "$alg: cold $cold us/call, cached $cached us/call (CPU); openssl speed gave no figure"
	fi
done
