-- sql/ext/10_jwt.sql
--   JWT functions (src/jwt.c, src/jwt_pkey.c): compact JWS signing and
--   strict verification.  They read no table, need no privilege, and keep
--   the default EXECUTE grant to PUBLIC.  See docs/jwt.md.
--   medpro_jwt_sign is VOLATILE: PS* and ES* signatures are randomised, so
--   the same arguments do not always give the same token.

CREATE FUNCTION medpro_jwt_sign(payload jsonb, key bytea,
                                algorithm text DEFAULT 'HS256',
                                kid text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'medpro_jwt_sign_bytea'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION medpro_jwt_sign(payload jsonb, key text,
                                algorithm text DEFAULT 'HS256',
                                kid text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'medpro_jwt_sign_text'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION medpro_jwt_verify(token text, key bytea,
                                  algorithm text DEFAULT 'HS256',
                                  at timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'medpro_jwt_verify_bytea'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION medpro_jwt_verify(token text, key text,
                                  algorithm text DEFAULT 'HS256',
                                  at timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'medpro_jwt_verify_text'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION medpro_jwt_decode(token text, key bytea,
                                  algorithm text DEFAULT 'HS256',
                                  at timestamptz DEFAULT NULL)
RETURNS TABLE(header jsonb, payload jsonb, valid boolean, reason text)
AS 'MODULE_PATHNAME', 'medpro_jwt_decode_bytea'
LANGUAGE C VOLATILE PARALLEL SAFE ROWS 1;

CREATE FUNCTION medpro_jwt_decode(token text, key text,
                                  algorithm text DEFAULT 'HS256',
                                  at timestamptz DEFAULT NULL)
RETURNS TABLE(header jsonb, payload jsonb, valid boolean, reason text)
AS 'MODULE_PATHNAME', 'medpro_jwt_decode_text'
LANGUAGE C VOLATILE PARALLEL SAFE ROWS 1;

-- This backend's caches of parsed asymmetric keys and verified tokens.
CREATE FUNCTION medpro_jwt_cache_stats(OUT keys integer, OUT tokens integer,
                                       OUT token_hits bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'medpro_jwt_cache_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION medpro_jwt_cache_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'medpro_jwt_cache_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION medpro_jwt_sign(jsonb, bytea, text, text) IS
'Sign a jsonb object as a compact JWS: HS256/384/512 with a secret of at least the hash size, RS*/PS*/ES256/ES384/ES512/EdDSA with a PEM private key; kid goes into the header when not null';
COMMENT ON FUNCTION medpro_jwt_sign(jsonb, text, text, text) IS
'Sign a jsonb object as a compact JWS; the text key is the HS* secret as UTF-8 bytes, or the PEM private key of the other algorithms';
COMMENT ON FUNCTION medpro_jwt_verify(text, bytea, text, timestamptz) IS
'Verify a JWT under the pinned algorithm and return its claims, or raise 28000 "invalid token: <reason>"; the key is the HS* secret or a PEM public (or private) key; exp is required, at replaces the clock';
COMMENT ON FUNCTION medpro_jwt_verify(text, text, text, timestamptz) IS
'Verify a JWT under the pinned algorithm and return its claims, or raise 28000 "invalid token: <reason>"; the text key is the HS* secret as UTF-8 bytes, or a PEM key';
COMMENT ON FUNCTION medpro_jwt_decode(text, bytea, text, timestamptz) IS
'Check a JWT like medpro_jwt_verify but return one row (header, payload, valid, reason) instead of raising for a bad token';
COMMENT ON FUNCTION medpro_jwt_decode(text, text, text, timestamptz) IS
'Check a JWT like medpro_jwt_verify but return one row (header, payload, valid, reason); the text key stands for its UTF-8 bytes';
COMMENT ON FUNCTION medpro_jwt_cache_stats() IS
'This backend''s asymmetric JWT caches: parsed keys, verified tokens, and token cache hits since the last reset';
COMMENT ON FUNCTION medpro_jwt_cache_reset() IS
'Empty this backend''s caches of parsed asymmetric keys and verified tokens';
