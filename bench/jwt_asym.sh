#!/usr/bin/env bash
# bench/jwt_asym.sh: asymmetric verification cost (RS256 2048-bit, ES256,
# EdDSA), medpro against OpenSSL's own verify speed, side by side in one run.
#
# cold:   N distinct tokens in one query (N > 256, so the verified-token
#         cache misses; the parsed key is cached after the first call);
# cached: one token verified N times (a verified-token cache hit each time;
#         the clock and exp/nbf/iat are still checked on every call);
# openssl: 1e6 / the verify/s of `openssl speed` for the same algorithm.
# Per-call times have the query's cost of a row subtracted.  Uses a
# throwaway cluster (scripts/cluster.sh) and the test-only keys of test/keys.
set -euo pipefail
N=${1:-3000}
. "$(dirname "$0")/lib.sh"

# openssl speed prints the best it can do: its verify loop reuses one context.
speed=$(openssl speed -seconds "${MEDPRO_SPEED_SECONDS:-2}" rsa2048 ecdsap256 ed25519 2>/dev/null)
rs_us=$(awk '/^rsa 2048 bits/ {print 1e6 / $NF}' <<<"$speed")
es_us=$(awk '/ecdsa \(nistp256\)/ {print 1e6 / $NF}' <<<"$speed")
ed_us=$(awk '/EdDSA \(Ed25519\)/ {print 1e6 / $NF}' <<<"$speed")

psql -X -q -v ON_ERROR_STOP=1 -v n="$N" -v rs_os="$rs_us" -v es_os="$es_us" -v ed_os="$ed_us" -d postgres <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
\set rs_key `cat test/keys/rsa2048.key`
\set rs_pub `cat test/keys/rsa2048.pub`
\set es_key `cat test/keys/p256.key`
\set es_pub `cat test/keys/p256.pub`
\set ed_key `cat test/keys/ed25519.key`
\set ed_pub `cat test/keys/ed25519.pub`
CREATE TABLE keys(alg text, priv text, pub text, openssl_us float8);
INSERT INTO keys VALUES ('RS256', :'rs_key', :'rs_pub', :rs_os), ('ES256', :'es_key', :'es_pub', :es_os),
                        ('EdDSA', :'ed_key', :'ed_pub', :ed_os);
CREATE TABLE tokens AS
SELECT k.alg, k.pub, i, medpro_jwt_sign(jsonb_build_object(
		'iss', 'medpro', 'sub', gen_random_uuid(), 'clinic_id', gen_random_uuid(),
		'role', 'doctor', 'iat', 1790000000, 'exp', 4102444800, 'ver', 1), k.priv, k.alg) AS t
  FROM keys k, generate_series(1, :n) i;
ANALYZE tokens;

CREATE TEMP TABLE timing (alg text, what text, us float8);
-- Each figure is the best of 3 rounds (the machine is shared).
DO $$
DECLARE
	r record;
	t0 timestamptz;
	n bigint;
	base float8;
	cold float8;
	hit float8;
	one text;
	round int;
BEGIN
	FOR r IN SELECT alg, pub FROM keys LOOP
		SELECT count(*) INTO n FROM tokens WHERE alg = r.alg;
		SELECT t INTO one FROM tokens WHERE alg = r.alg AND i = 1;
		PERFORM medpro_jwt_cache_reset();
		PERFORM medpro_jwt_verify(one, r.pub, r.alg);	-- parse the key once
		base := 'Infinity'; cold := 'Infinity'; hit := 'Infinity';
		FOR round IN 1..3 LOOP
			t0 := clock_timestamp();
			PERFORM count(t) FROM tokens WHERE alg = r.alg;
			base := least(base, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
			t0 := clock_timestamp();
			PERFORM count(medpro_jwt_verify(t, r.pub, r.alg)) FROM tokens WHERE alg = r.alg;
			cold := least(cold, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
			t0 := clock_timestamp();
			PERFORM count(medpro_jwt_verify(one, r.pub, r.alg)) FROM tokens WHERE alg = r.alg;
			hit := least(hit, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
		END LOOP;
		INSERT INTO timing VALUES (r.alg, 'cold', cold - base), (r.alg, 'cached', hit - base);
	END LOOP;
END $$;
\pset footer off
SELECT k.alg AS "algorithm", avg(length(t.t))::int AS "token bytes",
       round(c.us::numeric, 2) AS "medpro cold us", round(k.openssl_us::numeric, 2) AS "openssl speed us",
       round((c.us / k.openssl_us)::numeric, 2) AS "cold / openssl",
       round(h.us::numeric, 2) AS "medpro cached us"
  FROM keys k JOIN tokens t USING (alg)
       JOIN timing c ON c.alg = k.alg AND c.what = 'cold'
       JOIN timing h ON h.alg = k.alg AND h.what = 'cached'
 GROUP BY k.alg, c.us, k.openssl_us, h.us ORDER BY k.alg DESC;
SQL
