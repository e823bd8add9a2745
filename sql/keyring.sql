--
-- keyring: medpro_key_rotate for every algorithm, medpro_key_import of HMAC
-- secrets and PEM public keys, medpro_key_retire, medpro_jwks, and the
-- claims policy of medpro_authenticate (kid and alg, iss, aud, the clinic
-- and subject claims, the legacy claim names).  Runs last: it leaves an
-- HS256 key active.  Uses its own clinics K1, K2 and users.
--
SET client_min_messages = notice;
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a0000000-0000-4000-8000-0000000000a1', 'Keyring K1', 'FR', 'k1@clinic.test', 'active'),
	('b0000000-0000-4000-8000-0000000000b2', 'Keyring K2', 'ES', 'k2@clinic.test', 'active');

-- SQLSTATE, message and detail of a statement's error, or 'ok'.
CREATE FUNCTION kr_try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v_detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' [' || nullif(v_detail, '') || ']', '');
END
$$;

-- Authenticate a token: 'ok <clinic>' or the error.
CREATE FUNCTION kr_auth(tok text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM medpro_authenticate(tok);
	RETURN 'ok ' || medpro_current_clinic();
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Sign claims with a key of the keyring (superuser: it unseals the key).
CREATE FUNCTION kr_sign(claims jsonb, key_id text) RETURNS text
LANGUAGE sql AS $$
	SELECT medpro_jwt_sign(claims, medpro.unseal(k.secret_sealed, 'medpro.keys:' || k.kid),
						   k.algorithm, k.kid)
	  FROM medpro.keys k WHERE k.kid = key_id
$$;

-- A token with any header and a meaningless signature.
CREATE FUNCTION kr_forge(header jsonb, claims jsonb) RETURNS text
LANGUAGE sql AS $$
	SELECT regress_b64url(header::text) || '.' || regress_b64url(claims::text) || '.AAAA'
$$;

-- The claims medpro_login would issue to a user, valid for ten minutes.
CREATE FUNCTION kr_claims(user_email text) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_build_object('iss', 'medpro', 'sub', u.id, 'clinic_id', u.clinic_id,
							  'role', u.role, 'ver', u.token_version,
							  'exp', extract(epoch FROM now())::bigint + 600)
	  FROM medpro.users u WHERE u.email = user_email
$$;

-- Test keys (public fixtures): table kr_pem(name, pem).
\set ECHO none
\i test/fixtures/keyring_keys.sql
\set ECHO all

SET ROLE regress_op;
SELECT medpro_create_user('kr-admin@k1.test', 'keyring admin pw 1', 'admin', NULL, NULL,
						  'a0000000-0000-4000-8000-0000000000a1') IS NOT NULL AS created;
SELECT medpro_create_user('kr-doc@k2.test', 'keyring doctor pw 2', 'doctor', NULL, NULL,
						  'b0000000-0000-4000-8000-0000000000b2') IS NOT NULL AS created;
RESET ROLE;

--
-- Rotation, for every algorithm.
--
SET ROLE regress_op;
CREATE TEMP TABLE kr_rot AS
SELECT a.alg, a.n, medpro_key_rotate(a.alg) AS kid
  FROM unnest('{HS256,HS384,HS512,RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA}'::text[])
	   WITH ORDINALITY AS a(alg, n)
 ORDER BY a.n;
GRANT SELECT ON kr_rot TO PUBLIC;
RESET ROLE;
SELECT count(*) AS rotated, count(*) FILTER (WHERE kid ~ '^mp[0-9a-f]{18}$') AS kid_format,
	   count(DISTINCT kid) AS distinct_kids FROM kr_rot;
-- The last one is active, the others verify; the private or secret part is
-- sealed (unseal gives the secret, or a PKCS#8 private key), and only the
-- public key is in public_pem.
SELECT r.alg, k.status, k.source,
	   k.secret_sealed IS NOT NULL AS sealed,
	   position('BEGIN' IN encode(k.secret_sealed, 'escape')) = 0 AS not_plain,
	   CASE WHEN r.alg LIKE 'HS%' THEN length(medpro.unseal(k.secret_sealed, 'medpro.keys:' || k.kid))::text
			ELSE substr(convert_from(medpro.unseal(k.secret_sealed, 'medpro.keys:' || k.kid), 'UTF8'), 1, 27) END AS unsealed,
	   k.public_pem ~ '^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END PUBLIC KEY-----\n$' AS spki_pem
  FROM kr_rot r JOIN medpro.keys k USING (kid) ORDER BY r.n;
-- Sealed under its own row: it does not unseal under another kid.
SELECT kr_try(format($$SELECT medpro.unseal(secret_sealed, 'medpro.keys:mp000000000000000000') FROM medpro.keys WHERE kid = %L$$,
					 (SELECT kid FROM kr_rot WHERE alg = 'ES256'))) AS other_context;

-- Rotation errors.
SET ROLE regress_op;
SELECT kr_try($$SELECT medpro_key_rotate('none')$$);
SELECT kr_try($$SELECT medpro_key_rotate('rs256')$$);
SELECT kr_try($$SELECT medpro_key_rotate('Ed25519')$$);
SELECT kr_try($$SELECT medpro_key_rotate('-----BEGIN PRIVATE KEY-----')$$);
SELECT kr_try($$SELECT medpro_key_rotate(NULL)$$);
RESET ROLE;
SET ROLE regress_app;
SELECT kr_try($$SELECT medpro_key_rotate('ES256')$$);
RESET ROLE;
SET ROLE regress_nobody;
SELECT kr_try($$SELECT medpro_key_rotate('ES256')$$);
RESET ROLE;

--
-- medpro_jwks: the public keys of the asymmetric keys, newest first.
--
SET ROLE regress_app;
SELECT jsonb_typeof(medpro_jwks()) AS type, (SELECT array_agg(k) FROM jsonb_object_keys(medpro_jwks()) k) AS members;
SELECT j.kid = r.kid AS kid_matches, j.alg, j.kty, j.use, j.crv, j.e,
	   length(j.n) AS n_len, length(j.x) AS x_len, length(j.y) AS y_len,
	   (SELECT array_agg(m ORDER BY m) FROM jsonb_object_keys(e.jwk) m) AS members
  FROM jsonb_array_elements(medpro_jwks() -> 'keys') WITH ORDINALITY AS e(jwk, ord)
	   CROSS JOIN LATERAL jsonb_to_record(e.jwk) AS j(kid text, alg text, kty text, use text, crv text,
													  e text, n text, x text, y text)
	   LEFT JOIN kr_rot r ON r.alg = j.alg
 ORDER BY e.ord;
RESET ROLE;
-- Unpadded base64url, RSA n without a leading zero byte (2048 bits exactly),
-- EC coordinates zero-padded to the field size.
SELECT j ->> 'alg' AS alg,
	   bool_and(v ~ '^[A-Za-z0-9_-]+$') AS b64url,
	   min(length(decode(rpad(translate(v, '-_', '+/'), (length(v) + 3) / 4 * 4, '='), 'base64'))) AS min_bytes,
	   max(length(decode(rpad(translate(v, '-_', '+/'), (length(v) + 3) / 4 * 4, '='), 'base64'))) AS max_bytes
  FROM jsonb_array_elements(medpro_jwks() -> 'keys') j,
	   LATERAL (SELECT j ->> m FROM unnest('{n,x,y}'::text[]) m WHERE j ? m) AS p(v)
 GROUP BY 1 ORDER BY 1;
SELECT j ->> 'alg' AS alg, get_byte(decode(rpad(translate(j ->> 'n', '-_', '+/'), 344, '='), 'base64'), 0) >= 128 AS top_bit_set
  FROM jsonb_array_elements(medpro_jwks() -> 'keys') j WHERE j ->> 'kty' = 'RSA' ORDER BY 1;
-- Never a secret, never a private member.
SELECT count(*) AS private_members FROM jsonb_array_elements(medpro_jwks() -> 'keys') j
 WHERE j ?| '{d,p,q,dp,dq,qi,k,oth}';
-- Who may call it; volatility and definer settings.
SET ROLE regress_op;
SELECT jsonb_array_length(medpro_jwks() -> 'keys') AS operator_sees;
RESET ROLE;
SET ROLE regress_nobody;
SELECT kr_try($$SELECT medpro_jwks()$$);
RESET ROLE;
SELECT p.provolatile, p.prosecdef, p.proconfig, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p WHERE p.proname = 'medpro_jwks';

--
-- Privileges: no private material is readable but by superusers.
--
SET ROLE regress_app;
SELECT kr_try($$SELECT kid FROM medpro.keys$$);
SELECT kr_try($$SELECT medpro.unseal(secret_sealed, 'medpro.keys:' || kid) FROM medpro.keys$$);
RESET ROLE;
SET ROLE regress_op;
SELECT kr_try($$SELECT secret_sealed FROM medpro.keys$$);
SELECT kr_try($$SELECT medpro.unseal('\x00', 'x')$$);
SELECT count(*) FILTER (WHERE kid IN (SELECT kid FROM kr_rot)) AS keys_rotated_here,
	   count(*) FILTER (WHERE public_pem LIKE '%PRIVATE%') AS private_pems
  FROM (SELECT kid, public_pem FROM medpro.keys) k;
RESET ROLE;

--
-- Import.
--
-- Errors, checked before anything is stored.
SELECT kr_try($$SELECT medpro_key_import(NULL, 'RS256', 'x')$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', NULL, 'x')$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'RS256', NULL)$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'RS1', 'x')$$);
SELECT kr_try($$SELECT medpro_key_import('', 'RS256', 'x')$$);
SELECT kr_try($$SELECT medpro_key_import(repeat('k', 65), 'RS256', 'x')$$);
SELECT kr_try($$SELECT medpro_key_import('kr x', 'RS256', 'x')$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'HS256', 'a secret of 32 bytes, but ...', '')$$);
-- A PEM key is not an HMAC secret; a secret is not a PEM key.
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'HS256', pem)) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'HS256', repeat('s', 31)));
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'RS256', 'a-long-shared-secret-of-more-than-32-bytes')$$);
-- The key type must fit the algorithm.
SELECT name, alg, kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', alg, pem)) AS result
  FROM kr_pem, (VALUES ('ec_pub', 'RS256'), ('ec_pub', 'PS256'), ('ec_pub', 'ES384'), ('ec384_pub', 'ES256'),
						('rsa_pub', 'ES256'), ('rsa_pub', 'EdDSA'), ('ed_pub', 'ES256'), ('ec_pub', 'EdDSA'),
						('ed448_pub', 'EdDSA'), ('rsa1024_pub', 'RS256'), ('rsa1024_pub', 'PS512')) AS c(n, alg)
 WHERE name = n ORDER BY 1, 2;
-- Not one plain PEM key.
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', pem)) FROM kr_pem WHERE name = 'ec_enc';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', pem)) FROM kr_pem WHERE name = 'ec_legacy_enc';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', replace(pem, 'PUBLIC KEY', 'CERTIFICATE'))) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', pem || pem)) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', pem || 'trailing')) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', 'garbage ' || pem)) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', replace(pem, 'MFkw', 'MFkx'))) FROM kr_pem WHERE name = 'ec_pub';
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'ES256', E'-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'ES256', E'-----BEGIN PUBLIC KEY-----\nAAAA\n')$$);
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'ES256', '-----BEGIN public key-----')$$);
SELECT count(*) AS nothing_stored FROM medpro.keys WHERE kid = 'kr-x';
-- Operators and applications may not import.
SET ROLE regress_op;
SELECT kr_try(format('SELECT medpro_key_import(%L, %L, %L)', 'kr-x', 'ES256', pem)) FROM kr_pem WHERE name = 'ec_pub';
RESET ROLE;
SET ROLE regress_app;
SELECT kr_try($$SELECT medpro_key_import('kr-x', 'ES256', 'x')$$);
RESET ROLE;

-- Public keys: RSA (SPKI and PKCS#1), EC, Ed25519; a private key keeps only
-- its public part (with a notice).  Each is stored as SPKI PEM, unsealed,
-- verify-only.
SELECT medpro_key_import('kr-rsa', 'RS256', pem, 'https://idp.example') FROM kr_pem WHERE name = 'rsa_pub';
SELECT medpro_key_import('kr-rsa-pkcs1', 'PS256', pem) FROM kr_pem WHERE name = 'rsa_pkcs1';
SELECT medpro_key_import('kr-ec', 'ES256', pem) FROM kr_pem WHERE name = 'ec_pub';
SELECT medpro_key_import('kr-ec-from-private', 'ES256', pem) FROM kr_pem WHERE name = 'ec_pem';
SELECT medpro_key_import('kr-ed', 'EdDSA', E'\n  ' || pem || E'\n\n') FROM kr_pem WHERE name = 'ed_pub';
SELECT medpro_key_import('kr-hs', 'HS256', 'keyring-legacy-secret-0123456789abcdef', 'legacy-node');
SELECT kr_try($$SELECT medpro_key_import('kr-ec', 'ES256', 'x')$$);
SELECT k.kid, k.algorithm, k.status, k.source, k.issuer, k.secret_sealed IS NOT NULL AS sealed,
	   k.public_pem = (SELECT pem FROM kr_pem WHERE name = CASE k.kid WHEN 'kr-rsa' THEN 'rsa_pub'
			WHEN 'kr-rsa-pkcs1' THEN 'rsa_pub' WHEN 'kr-ec' THEN 'ec_pub' WHEN 'kr-ec-from-private' THEN 'ec_pub'
			WHEN 'kr-ed' THEN 'ed_pub' END) AS public_pem_is_spki
  FROM medpro.keys k WHERE k.kid LIKE 'kr-%' ORDER BY k.kid;
-- Imported public keys are in the JWK Set, the imported secret is not; the
-- active key is still the last generated one.
SELECT j ->> 'kid' AS kid, j ->> 'alg' AS alg
  FROM jsonb_array_elements(medpro_jwks() -> 'keys') j WHERE j ->> 'kid' LIKE 'kr-%' ORDER BY 1;
SELECT (SELECT kid FROM medpro.keys WHERE status = 'active') = (SELECT kid FROM kr_rot WHERE alg = 'EdDSA') AS active_unchanged;

--
-- Authentication: kid selects one key, and its algorithm.
--
SET ROLE regress_op;
SELECT medpro_key_rotate('HS256') AS hs_kid \gset
RESET ROLE;
SET ROLE regress_app;
SELECT medpro_login('kr-admin@k1.test', 'keyring admin pw 1') AS tok1 \gset
SELECT kr_auth(:'tok1') AS login_token;
RESET ROLE;
SELECT regress_jwt_part(:'tok1', 1) ->> 'kid' = :'hs_kid' AS signed_with_active_key;
-- The previous HS keys still verify (until retired).
SELECT r.alg, kr_auth(kr_sign(kr_claims('kr-admin@k1.test'), r.kid)) AS result
  FROM kr_rot r WHERE r.alg LIKE 'HS%' ORDER BY r.n;
-- Unknown kid; a retired kid; no kid and no imported key of that algorithm.
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test'), repeat('k', 32), 'HS256', 'mp000000000000000000')) AS unknown_kid;
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test'), repeat('k', 48), 'HS384')) AS no_kid;
-- The header's alg must be the key's: never another one, never tried in turn.
SELECT kr_auth(kr_forge(jsonb_build_object('alg', a, 'kid', :'hs_kid'), kr_claims('kr-admin@k1.test'))) AS result, a AS header_alg
  FROM unnest('{HS384,HS512,RS256,ES256,EdDSA,none}'::text[]) a;
SELECT kr_auth(kr_forge(jsonb_build_object('alg', 'HS256', 'kid', 'kr-rsa'), kr_claims('kr-admin@k1.test'))) AS hs_header_on_rsa_key;
SELECT kr_auth(kr_forge(jsonb_build_object('alg', 'HS256', 'kid', 42), kr_claims('kr-admin@k1.test'))) AS numeric_kid;
-- A kid-less token checks the newest imported key of its algorithm only.
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test') || '{"iss":"legacy-node"}', 'keyring-legacy-secret-0123456789abcdef')) AS legacy_no_kid;

-- iss: required for medpro's keys, and for an imported key that names one.
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') - 'iss', :'hs_kid')) AS no_iss;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"iss":"other"}', :'hs_kid')) AS other_iss;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"iss":["medpro"]}', :'hs_kid')) AS array_iss;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"iss":null}', :'hs_kid')) AS null_iss;
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test'), 'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS imported_wrong_iss;
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test') - 'iss', 'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS imported_no_iss;
SET medpro.jwt_issuer = 'https://medpro.example';
SELECT kr_auth(:'tok1') AS old_issuer_refused;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"iss":"https://medpro.example"}', :'hs_kid')) AS new_issuer;
SELECT medpro_login('kr-admin@k1.test', 'keyring admin pw 1') AS tok_iss \gset
SELECT regress_jwt_part(:'tok_iss', 2) ->> 'iss' AS login_iss, kr_auth(:'tok_iss') AS result;
RESET medpro.jwt_issuer;

-- aud: required when medpro.jwt_audience is set; a string equal to it or an
-- array containing it.
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"aud":"anything"}', :'hs_kid')) AS aud_unset_not_checked;
SET medpro.jwt_audience = 'medpro-api';
SELECT c.aud, kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || c.claim, :'hs_kid')) AS result
  FROM (VALUES ('missing', '{}'::jsonb), ('null', '{"aud":null}'), ('"medpro-api"', '{"aud":"medpro-api"}'),
			   ('"other"', '{"aud":"other"}'), ('"MEDPRO-API"', '{"aud":"MEDPRO-API"}'),
			   ('["x","medpro-api"]', '{"aud":["x","medpro-api"]}'), ('[]', '{"aud":[]}'),
			   ('["other"]', '{"aud":["other"]}'), ('[["medpro-api"]]', '{"aud":[["medpro-api"]]}'),
			   ('{"medpro-api":1}', '{"aud":{"medpro-api":1}}'), ('42', '{"aud":42}'),
			   ('"medpro-api "', '{"aud":"medpro-api "}')) AS c(aud, claim);
SELECT medpro_login('kr-admin@k1.test', 'keyring admin pw 1') AS tok_aud \gset
SELECT regress_jwt_part(:'tok_aud', 2) -> 'aud' AS login_aud, kr_auth(:'tok_aud') AS result;
-- aud applies to imported keys as well
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test') || '{"iss":"legacy-node"}', 'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS imported_no_aud;
RESET medpro.jwt_audience;

-- The clinic claim: a JSON string holding the canonical lower-case UUID of
-- the user's own clinic.
SELECT c.form, kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || jsonb_build_object('clinic_id', c.v), :'hs_kid')) AS result
  FROM (VALUES ('canonical', '"a0000000-0000-4000-8000-0000000000a1"'::jsonb),
			   ('upper case', '"A0000000-0000-4000-8000-0000000000A1"'),
			   ('braces', '"{a0000000-0000-4000-8000-0000000000a1}"'),
			   ('no hyphens', '"a0000000000040008000 0000000000a1"'),
			   ('urn', '"urn:uuid:a0000000-0000-4000-8000-0000000000a1"'),
			   ('trailing space', '"a0000000-0000-4000-8000-0000000000a1 "'),
			   ('number', '42'), ('array', '["a0000000-0000-4000-8000-0000000000a1"]'),
			   ('object', '{"id":"a0000000-0000-4000-8000-0000000000a1"}'),
			   ('null', 'null'),
			   ('other clinic', '"b0000000-0000-4000-8000-0000000000b2"'),
			   ('unknown clinic', '"99999999-0000-4000-8000-000000000009"')) AS c(form, v);
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') - 'clinic_id', :'hs_kid')) AS clinic_claim_missing;
-- Two clinics: each user's token selects their own clinic only.
SELECT kr_auth(kr_sign(kr_claims('kr-doc@k2.test'), :'hs_kid')) AS k2_doctor;
SELECT kr_auth(kr_sign(kr_claims('kr-doc@k2.test') || '{"clinic_id":"a0000000-0000-4000-8000-0000000000a1"}', :'hs_kid')) AS k2_doctor_claims_k1;
-- The subject likewise.
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || jsonb_build_object('sub', upper(kr_claims('kr-admin@k1.test') ->> 'sub')), :'hs_kid')) AS upper_sub;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') - 'sub', :'hs_kid')) AS no_sub;
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test') || '{"sub":7}', :'hs_kid')) AS numeric_sub;

-- Legacy claim names: only for tokens verified with an imported key.
SELECT kr_auth(kr_sign(jsonb_build_object('iss', 'medpro', 'userId', sub, 'companyId', clinic_id, 'exp', exp), :'hs_kid')) AS legacy_names_medpro_key
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('iss', 'legacy-node', 'userId', sub, 'companyId', clinic_id, 'exp', exp),
							   'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS legacy_names_imported_key
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('iss', 'legacy-node', 'userId', sub, 'sub', sub, 'companyId', clinic_id, 'exp', exp),
							   'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS both_subject_names
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('iss', 'legacy-node', 'userId', sub, 'clinic_id', clinic_id, 'companyId', clinic_id, 'exp', exp),
							   'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS both_clinic_names
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('iss', 'legacy-node', 'userId', sub, 'companyId', upper(clinic_id), 'exp', exp),
							   'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS legacy_upper_clinic
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('iss', 'legacy-node', 'userId', sub, 'companyId', 'b0000000-0000-4000-8000-0000000000b2', 'exp', exp),
							   'keyring-legacy-secret-0123456789abcdef', 'HS256', 'kr-hs')) AS legacy_other_clinic
  FROM jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint);

-- PostgREST's pre-request hook gives the same refusals.
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' ||
	medpro_jwt_sign(kr_claims('kr-admin@k1.test'), repeat('k', 32), 'HS256', 'mp000000000000000000'))::text, true) IS NOT NULL AS set;
SELECT kr_try('SELECT medpro_pre_request()');
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok1')::text, true) IS NOT NULL AS set;
SELECT medpro_pre_request();
SELECT medpro_current_clinic();
COMMIT;

--
-- Asymmetric keys: medpro_login signs with the active key whatever its
-- algorithm, and every older key keeps verifying.
--
CREATE TEMP TABLE kr_asym (alg text, n int, kid text, tok text);
GRANT SELECT ON kr_asym TO PUBLIC;
DO $$
DECLARE
	a text;
	i int := 0;
	k text;
BEGIN
	FOREACH a IN ARRAY '{RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA}'::text[] LOOP
		i := i + 1;
		k := medpro_key_rotate(a);
		INSERT INTO kr_asym VALUES (a, i, k, medpro_login('kr-admin@k1.test', 'keyring admin pw 1'));
	END LOOP;
END
$$;
SET ROLE regress_app;
SELECT alg, regress_jwt_part(tok, 1) ->> 'alg' = alg AS header_alg, regress_jwt_part(tok, 1) ->> 'kid' = kid AS header_kid,
	   length(split_part(tok, '.', 3)) AS sig_chars, kr_auth(tok) AS result
  FROM kr_asym ORDER BY n;
RESET ROLE;
-- A real signature under another key of the same algorithm, or a header
-- naming another algorithm: refused, no other key is tried.
SELECT kr_auth(regress_b64url(jsonb_build_object('alg', 'ES256', 'typ', 'JWT', 'kid', k.kid)::text) || '.' ||
			   split_part(t.tok, '.', 2) || '.' || split_part(t.tok, '.', 3)) AS other_es256_key
  FROM kr_asym t, medpro.keys k WHERE t.alg = 'ES256' AND k.kid = 'kr-ec-from-private';
SELECT kr_auth(regress_b64url(jsonb_build_object('alg', 'PS256', 'typ', 'JWT', 'kid', kid)::text) || '.' ||
			   split_part(tok, '.', 2) || '.' || split_part(tok, '.', 3)) AS rs256_token_as_ps256
  FROM kr_asym WHERE alg = 'RS256';
-- Tokens of an external issuer, verified with its imported public key: its
-- iss when the key names one, the legacy claim names, kid-less tokens.
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test') || '{"iss":"https://idp.example"}', pem, 'RS256', 'kr-rsa')) AS imported_rsa
  FROM kr_pem WHERE name = 'rsa_pem';
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test'), pem, 'RS256', 'kr-rsa')) AS imported_rsa_medpro_iss
  FROM kr_pem WHERE name = 'rsa_pem';
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test') || '{"iss":"https://idp.example"}', pem, 'RS256')) AS imported_rsa_no_kid
  FROM kr_pem WHERE name = 'rsa_pem';
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('userId', c.sub, 'companyId', c.clinic_id, 'exp', c.exp), p.pem, 'ES256', 'kr-ec-from-private')) AS imported_ec_legacy
  FROM kr_pem p, jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint) WHERE p.name = 'ec_pem';
SELECT kr_auth(medpro_jwt_sign(jsonb_build_object('userId', c.sub, 'companyId', 'b0000000-0000-4000-8000-0000000000b2', 'exp', c.exp), p.pem, 'ES256', 'kr-ec-from-private')) AS imported_ec_other_clinic
  FROM kr_pem p, jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint) WHERE p.name = 'ec_pem';
SELECT kr_auth(medpro_jwt_sign(kr_claims('kr-admin@k1.test'), pem, 'EdDSA', 'kr-ed')) AS imported_ed
  FROM kr_pem WHERE name = 'ed_pem';
-- The legacy names stay refused under medpro's own asymmetric key.
SELECT kr_auth(kr_sign(jsonb_build_object('iss', 'medpro', 'userId', c.sub, 'companyId', c.clinic_id, 'exp', c.exp), a.kid)) AS legacy_names_medpro_es384
  FROM kr_asym a, jsonb_to_record(kr_claims('kr-admin@k1.test')) AS c(sub text, clinic_id text, exp bigint) WHERE a.alg = 'ES384';
-- A key's retirement ends its tokens at once, in this backend's verified-token cache too.
SELECT kr_auth(tok) AS before_retire FROM kr_asym WHERE alg = 'PS384';
SELECT kr_auth(tok) AS cached FROM kr_asym WHERE alg = 'PS384';
SELECT tokens > 0 AS tokens_cached, token_hits > 0 AS cache_hit FROM medpro_jwt_cache_stats();
SET ROLE regress_op;
SELECT medpro_key_retire(kid) FROM kr_asym WHERE alg = 'PS384';
RESET ROLE;
SELECT keys, tokens FROM medpro_jwt_cache_stats();
SELECT kr_auth(tok) AS after_retire FROM kr_asym WHERE alg = 'PS384';
-- Rotation empties the caches as well.
SELECT kr_auth(tok) AS es512 FROM kr_asym WHERE alg = 'ES512';
SELECT tokens > 0 AS tokens_cached FROM medpro_jwt_cache_stats();
SET ROLE regress_op;
SELECT medpro_key_rotate('HS256') ~ '^mp' AS rotated;
RESET ROLE;
SELECT keys, tokens FROM medpro_jwt_cache_stats();

--
-- Retirement.
--
SET ROLE regress_op;
SELECT kr_try($$SELECT medpro_key_retire(NULL)$$);
SELECT kr_try($$SELECT medpro_key_retire('kr-nope')$$);
SELECT medpro_key_retire(kid) FROM kr_rot WHERE alg IN ('HS256', 'RS256', 'ES256');
SELECT medpro_key_retire('kr-ec');
SELECT medpro_key_retire('kr-ec');
RESET ROLE;
SET ROLE regress_app;
SELECT kr_try($$SELECT medpro_key_retire('kr-ed')$$);
RESET ROLE;
SELECT r.alg, k.status, k.secret_sealed IS NULL AS erased, k.retired_at IS NOT NULL AS retired_at
  FROM kr_rot r JOIN medpro.keys k USING (kid) WHERE r.alg IN ('HS256', 'HS384', 'RS256', 'ES256') ORDER BY r.n;
SELECT kr_auth(kr_forge(jsonb_build_object('alg', 'HS256', 'kid', kid), kr_claims('kr-admin@k1.test'))) AS retired_hs256
  FROM kr_rot WHERE alg = 'HS256';
SELECT kr_auth(kr_sign(kr_claims('kr-admin@k1.test'), kid)) AS hs384_still_verifies FROM kr_rot WHERE alg = 'HS384';
-- Retired keys leave the JWK Set.
SELECT count(*) FILTER (WHERE j ->> 'kid' IN (SELECT kid FROM kr_rot WHERE alg IN ('RS256', 'ES256')) OR j ->> 'kid' = 'kr-ec') AS retired_listed,
	   count(*) AS listed
  FROM jsonb_array_elements(medpro_jwks() -> 'keys') j;

-- Every keyring change is audited, without key material; every refusal
-- above was audited without the token.
SELECT action, count(*) FROM medpro.audit_log
 WHERE action IN ('key_rotate', 'key_import', 'key_retire') AND (entity_id LIKE 'kr-%' OR entity_id IN (SELECT kid FROM kr_rot))
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS leaking_rows FROM medpro.audit_log
 WHERE concat(new_data::text, old_data::text) ~ '(BEGIN|PRIVATE|eyJ|keyring-legacy-secret|keyring admin pw)';

-- Leave an HS256 key active for whatever runs next.
SET ROLE regress_op;
SELECT medpro_key_rotate('HS256') ~ '^mp' AS rotated;
RESET ROLE;
